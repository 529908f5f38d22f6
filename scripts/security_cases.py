"""The case table of docs/security.md, counted from the tests each section cites.

Every section of docs/security.md ends in a ``Tests:`` paragraph naming test files and
tests in backticks (``test_paths.py``, ``tests/unit/test_routing.py``,
``test_proxy_http.py::test_x``, or ``::test_y`` for another test of the last file named).
This script collects those tests with pytest, counts the cases (parametrised ids each
count), and writes the table between the ``<!-- cases -->`` markers:

    .venv/bin/python scripts/security_cases.py          # print the table
    .venv/bin/python scripts/security_cases.py --write  # update docs/security.md
    .venv/bin/python scripts/security_cases.py --check  # exit 1 if the doc is stale

A reference that matches no test is an error, so a renamed or deleted test cannot stay
cited. ``make docs`` writes the table; ``make test`` checks it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "security.md"
START, END = "<!-- cases -->", "<!-- /cases -->"
_SECTION = re.compile(r"^## (.+)$", re.M)
_REF = re.compile(r"`([\w/.]*test_\w+\.py)?(::\w+)?`")


def cited(doc: str) -> list[tuple[str, list[str]]]:
    """Each section's title and the pytest selectors its Tests paragraphs cite."""
    sections: list[tuple[str, list[str]]] = []
    if START in doc:  # the table itself cites nothing
        doc = doc[: doc.index(START)] + doc[doc.index(END) + len(END) :]
    parts = _SECTION.split(doc)
    for title, body in zip(parts[1::2], parts[2::2], strict=True):
        selectors: list[str] = []
        for paragraph in body.split("\n\n"):
            if "Tests:" not in paragraph and "tests:" not in paragraph.lower()[:20]:
                continue
            last = ""
            for file, test in _REF.findall(paragraph.split("Tests:", 1)[-1]):
                if file:
                    last = file if "/" in file else f"tests/integration/{file}"
                if not last:
                    continue
                selectors.append(last + test)
        if selectors:
            sections.append((title.strip(), selectors))
    return sections


def collected(selectors: list[str]) -> list[str]:
    files = sorted({s.split("::")[0] for s in selectors})
    result = subprocess.run(  # noqa: S603 - this repository's own pytest
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"pytest could not collect {files}:\n{result.stdout[-2000:]}{result.stderr}")
    return [line for line in result.stdout.splitlines() if "::" in line]


def count(selector: str, nodes: list[str]) -> int:
    file, _, test = selector.partition("::")
    if not test:
        return sum(1 for node in nodes if node.startswith(file + "::"))
    return sum(1 for node in nodes if re.match(re.escape(f"{file}::{test}") + r"(\[|$)", node))


def table(sections: list[tuple[str, list[str]]], nodes: list[str]) -> str:
    rows = ["| class | cited tests | cases |", "|---|---|---|"]
    total = 0
    for title, selectors in sections:
        cases = 0
        for selector in dict.fromkeys(selectors):
            found = count(selector, nodes)
            if found == 0:
                sys.exit(f"docs/security.md, {title}: `{selector}` matches no test")
            cases += found
        total += cases
        rows.append(f"| {title} | {len(dict.fromkeys(selectors))} | {cases} |")
    rows.append(f"| all classes | | {total} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args()
    doc = DOC.read_text("utf-8")
    sections = cited(doc)
    nodes = collected([s for _, selectors in sections for s in selectors])
    rendered = f"{START}\n{table(sections, nodes)}\n{END}"
    current = doc[doc.index(START) : doc.index(END) + len(END)] if START in doc else ""
    if args.check:
        if current != rendered:
            print("docs/security.md's case table is stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    if args.write:
        DOC.write_text(doc.replace(current, rendered) if current else doc + "\n" + rendered + "\n")
        return 0
    print(rendered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
