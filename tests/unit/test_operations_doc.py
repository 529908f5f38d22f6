"""docs/operations.md states what the code does: the fields a reload refuses, the stop
timings' defaults and the exit codes (so the page cannot drift from gateway/)."""

from __future__ import annotations

import re
from pathlib import Path

from gateway import reload, serve, supervisor
from gateway.config.models import ServerConfig

DOC = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()


def test_the_restart_only_fields_are_the_ones_reload_refuses() -> None:
    block = DOC.split("<!-- restart-only:begin -->")[1].split("<!-- restart-only:end -->")[0]
    assert re.findall(r"`([^`]+)`", block) == list(reload.RESTART_ONLY)


def test_the_stop_defaults_are_the_configs() -> None:
    fields = ServerConfig.model_fields
    assert f"**`server.drain_delay`** (default {fields['drain_delay'].default:g} s)" in DOC or (
        f"`server.drain_delay`** (default {fields['drain_delay'].default:g} s)" in DOC
    )
    assert f"`server.shutdown_timeout`** (default {fields['shutdown_timeout'].default:g} s)" in DOC
    margin = f"drain_delay + shutdown_timeout + {supervisor.STOP_MARGIN:g} s"
    assert margin in DOC


def test_the_supervisor_figures_are_the_codes() -> None:
    quick = supervisor.QUICK_EXIT
    assert f"within {quick:g} s of their start, {supervisor.CRASH_LOOP} times" in DOC
    assert f"up to {supervisor.MAX_BACKOFF:g} s" in DOC
    assert f"(within\n   {reload.METADATA_TIMEOUT:g} s)" in DOC or (
        f"(within {reload.METADATA_TIMEOUT:g} s)" in DOC
    )
    rows = dict(re.findall(r"^\| (\d) \| (.+) \|$", DOC, flags=re.M))
    assert set(rows) == {
        str(serve.EXIT_OK),
        str(serve.EXIT_FAILED),
        str(serve.EXIT_CANNOT_START),
    }
    assert "taken" in rows[str(serve.EXIT_CANNOT_START)]
