"""hf_gateway_client imports nothing of the gateway's server side: checked in a fresh
interpreter, where nothing is imported yet."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("gateway", "aiohttp", "redis", "authlib", "pydantic", "yaml", "prometheus_client")
LAZY = ("fastapi", "starlette", "gradio", "huggingface_hub", "httpx")

_REPORT = """
import importlib, json, sys
for name in {modules!r}:
    importlib.import_module(name)
{run}
print(json.dumps(sorted(sys.modules)))
"""


def _loaded(*modules: str, _run: str = "") -> set[str]:
    """Top-level names in sys.modules after importing ``modules`` (and running ``_run``)."""
    code = _REPORT.format(modules=list(modules), run=_run)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return {name.split(".")[0] for name in json.loads(done.stdout)}


def test_the_verifier_loads_pyjwt_and_nothing_of_the_gateway() -> None:
    loaded = _loaded("hf_gateway_client", "hf_gateway_client.verify")
    assert "jwt" in loaded and "hf_gateway_client" in loaded
    assert loaded.isdisjoint(FORBIDDEN), loaded & set(FORBIDDEN)
    assert loaded.isdisjoint(LAZY), loaded & set(LAZY)


def test_huggingface_hub_loads_only_when_its_shapes_are_asked_for() -> None:
    """huggingface_hub (installed here) comes in with the first to_oauth_info(), not before."""
    assert "huggingface_hub" not in _loaded("hf_gateway_client")
    code = "from hf_gateway_client.shapes import oauth_types; oauth_types()"
    loaded = _loaded("hf_gateway_client", _run=code)
    assert "huggingface_hub" in loaded
    ours = {"gateway", "aiohttp", "redis", "authlib"}  # huggingface_hub itself loads yaml
    assert loaded.isdisjoint(ours), loaded & ours


def test_the_fastapi_helper_does_not_pull_the_gateway_in() -> None:
    loaded = _loaded("hf_gateway_client.fastapi")
    assert "fastapi" in loaded
    server_side = set(FORBIDDEN) - {"pydantic"}  # FastAPI's own dependency
    assert loaded.isdisjoint(server_side), loaded & server_side
