"""The configuration blocks of docs/deploy/*.md, copied from docs/deploy/snippets/.

A guide marks each block it takes from a snippet file:

    <!-- snippet: nginx.conf -->
    ```nginx
    ...the file's text...
    ```
    <!-- /snippet -->

The tests run the snippet files themselves (tests/support/front_proxies.py), so a guide
whose block equals its file shows what was run. ``--write`` copies the files into the
guides; ``--check`` (run by tests/unit/test_deploy_snippets.py) exits 1 when one differs.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUIDES = ROOT / "docs" / "deploy"
SNIPPETS = GUIDES / "snippets"
_BLOCK = re.compile(
    r"(<!-- snippet: (?P<name>[\w.-]+) -->\n```(?P<lang>\w*)\n)"
    r"(?P<body>.*?)(```\n<!-- /snippet -->)",
    re.S,
)


def synced(text: str) -> str:
    """The guide with every marked block replaced by its snippet file."""

    def replace(match: re.Match[str]) -> str:
        body = (SNIPPETS / match["name"]).read_text("utf-8")
        return match.group(1) + body + match.group(5)

    return _BLOCK.sub(replace, text)


def blocks(text: str) -> list[str]:
    return [match["name"] for match in _BLOCK.finditer(text)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    stale = []
    for guide in sorted(GUIDES.glob("*.md")):
        text = guide.read_text("utf-8")
        fresh = synced(text)
        if fresh != text:
            if args.write:
                guide.write_text(fresh, "utf-8")
            else:
                stale.append(guide.name)
    if stale:
        print(f"stale snippets in {', '.join(stale)}: run scripts/deploy_snippets.py --write")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
