"""The tool guides (docs/tools/*.md) hold what `make test-tools` runs: every placement has a
command and a route, the route is a valid gateway route, and the command names the route's
port and, under a sub path, the route's prefix (the tool's base-path setting)."""

from __future__ import annotations

import pytest

from gateway.config import parse_config
from tests.support.harness import base_raw_config
from tests.tools.guides import PLACEMENTS, TOOLS, placement

CASES = [pytest.param(tool, where, id=f"{tool}-{where}") for tool in TOOLS for where in PLACEMENTS]


@pytest.mark.parametrize(("tool", "where"), CASES)
def test_each_placement_is_a_valid_route_with_its_command(tool: str, where: str) -> None:
    spec = placement(tool, where)
    raw = base_raw_config(8080, "http://127.0.0.1:1", spec.route["upstream"])
    raw["routes"] = [spec.route]
    route = parse_config(raw).routes[0]
    command = " ".join([*spec.env.values(), *spec.argv])
    assert str(spec.upstream_port) in command
    assert (route.path == "/") == (where == "root")
    if where == "sub":
        assert route.path.strip("/") in command, "the tool must be told its prefix"


def test_only_gradio_has_the_prefix_stripped() -> None:
    """root_path goes with strip_prefix: true; baseUrlPath, base_url, --path_prefix and
    --static-prefix go with strip_prefix: false (tests/tools/test_tool_placements.py)."""
    stripped = {tool: bool(placement(tool, "sub").route.get("strip_prefix")) for tool in TOOLS}
    assert stripped == {tool: tool == "gradio" for tool in TOOLS}
