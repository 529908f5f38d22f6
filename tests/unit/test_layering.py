"""Layering: the pure core imports no network or web library, and no module has an
import cycle. Both are checked in fresh interpreters, where nothing is imported yet.
"""

from __future__ import annotations

import importlib.util
import json
import pkgutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

import gateway

CORE = [
    "gateway.errors",
    "gateway.config",
    "gateway.identity",
    "gateway.policy",
    "gateway.routing",
    "gateway.access",
    "gateway.headers",
    "gateway.session.model",
    "gateway.session.store",
    "gateway.providers.base",
]
"""Pure modules (DESIGN.md §2); those not written yet are skipped."""

FORBIDDEN_LIBRARIES = ("aiohttp", "redis", "authlib", "jwt")
FORBIDDEN_GATEWAY = ("gateway.web", "gateway.app", "gateway.cli")

_REPORT_IMPORTS = """
import importlib, json, sys
importlib.import_module({module!r})
print(json.dumps(sorted(sys.modules)))
"""


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package does not exist (yet)
        return False


def _python(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="module")
def imported_by_core() -> dict[str, tuple[int, str, str]]:
    """For each core module: exit status, modules loaded, stderr of a fresh interpreter.

    The interpreters run in parallel to keep the suite fast.
    """
    running = {m: _python(_REPORT_IMPORTS.format(module=m)) for m in CORE if _exists(m)}
    results = {}
    for module, process in running.items():
        out, err = process.communicate(timeout=120)
        results[module] = (process.returncode, out, err)
    return results


@pytest.mark.parametrize("module", [pytest.param(m, id=m) for m in CORE])
def test_core_modules_import_no_network_or_web_code(
    module: str, imported_by_core: dict[str, tuple[int, str, str]]
) -> None:
    """Importing a core module loads none of aiohttp, redis, authlib, jwt or web/app/cli."""
    assert module in imported_by_core, f"{module} is listed as core but does not exist"
    status, out, err = imported_by_core[module]
    assert status == 0, err
    loaded = json.loads(out)
    libraries = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN_LIBRARIES)
    gateway_outer = sorted(
        m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN_GATEWAY)
    )
    assert libraries == []
    assert gateway_outer == []


def test_the_core_list_is_not_vacuous(
    imported_by_core: dict[str, tuple[int, str, str]],
) -> None:
    """At least the modules this suite tests exist and were checked."""
    assert {"gateway.config", "gateway.policy", "gateway.routing", "gateway.access"} <= set(
        imported_by_core
    )


def _gateway_modules() -> Iterator[str]:
    yield "gateway"
    for info in pkgutil.walk_packages(gateway.__path__, prefix="gateway."):
        if info.name != "gateway.__main__":  # importing it runs the CLI
            yield info.name


# Import each module first, with every gateway module forgotten before the next one, so
# a cycle that only breaks when a given module is imported first is found. Third-party
# libraries stay loaded between modules: cycles among them are not ours to find.
_IMPORT_EACH = """
import importlib, json, sys, traceback
failures = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m == "gateway" or m.startswith("gateway.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except BaseException:
        failures[name] = traceback.format_exc(limit=-3)
print(json.dumps(failures))
"""


def test_every_gateway_module_imports_first_in_a_fresh_interpreter() -> None:
    """No circular imports: each module (found with pkgutil.walk_packages) imports alone."""
    modules = sorted(_gateway_modules())
    assert {"gateway.config", "gateway.cli", "gateway.policy"} <= set(modules)
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH, json.dumps(modules)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    failures = json.loads(result.stdout)
    assert failures == {}, "\n".join(f"{name}:\n{tb}" for name, tb in failures.items())
