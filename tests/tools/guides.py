"""The tool guides (docs/tools/*.md) as the tests run them.

A guide marks each block a test reads with an HTML comment right above the fence:
``<!-- test: <placement> command -->`` (the tool's command line), ``<!-- test: <placement>
route -->`` (the gateway's ``routes:`` YAML) and ``<!-- test: file <name> -->`` (a file the
command needs, such as ``app.py``). Placements are ``root`` (the tool at ``/``) and ``sub``
(under a sub path). The tests start exactly what the guide says, so the two cannot drift.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

GUIDES = Path(__file__).resolve().parents[2] / "docs" / "tools"
TOOLS = ("gradio", "streamlit", "jupyterlab", "tensorboard", "mlflow")
PLACEMENTS = ("root", "sub")
PUBLIC_HOST = "tools.example.com"
"""The public host every guide uses; the tests make Chromium resolve it to the gateway."""

BLOCK = re.compile(r"<!-- test: ([^>]+?) -->\n```[\w-]*\n(.*?)\n```", re.DOTALL)


@dataclass(frozen=True)
class Placement:
    tool: str
    placement: str
    env: dict[str, str]
    argv: list[str]
    route: dict[str, Any]
    files: dict[str, str]

    @property
    def upstream_port(self) -> int:
        match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/?", self.route["upstream"])
        assert match, f"{self.tool}: the guide's upstream is not http://127.0.0.1:PORT"
        return int(match.group(1))


def blocks(tool: str) -> dict[str, str]:
    text = (GUIDES / f"{tool}.md").read_text("utf-8")
    found: dict[str, str] = {}
    for name, body in BLOCK.findall(text):
        assert name not in found, f"{tool}.md marks two blocks '{name}'"
        found[name] = body
    return found


def parse_command(line: str) -> tuple[dict[str, str], list[str]]:
    """``VAR=value ... program args``: leading assignments become the environment."""
    words = shlex.split(line.replace("\\\n", " "))
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    return env, words


def placement(tool: str, where: str) -> Placement:
    found = blocks(tool)
    env, argv = parse_command(found[f"{where} command"])
    routes = yaml.safe_load(found[f"{where} route"])["routes"]
    assert len(routes) == 1, f"{tool}.md {where}: one route per placement"
    files = {
        name.removeprefix("file "): body for name, body in found.items() if name.startswith("file ")
    }
    return Placement(tool, where, env, argv, routes[0], files)
