"""``hf_gateway``: the distinct import name of hf-gateway, an alias of ``gateway``.

The package has always been importable as ``gateway``, a generic name another
distribution may also use. ``hf_gateway`` names the same modules, not copies:
``import hf_gateway.config`` gives the very module ``gateway.config`` is, so classes,
registries and ``isinstance`` checks agree whichever name a caller used.
(``hf_gateway_client``, the upstream-side verifier, is a separate package.)
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Sequence

import gateway

_ALIAS = __name__  # "hf_gateway"
_TARGET = "gateway"


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``hf_gateway.X`` as the already-importable ``gateway.X``."""

    def __init__(self) -> None:
        self._specs: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_ALIAS + ".") or fullname == _ALIAS + ".__main__":
            return None  # python -m hf_gateway runs gateway/__main__.py, found on gateway's path
        if importlib.util.find_spec(_TARGET + fullname[len(_ALIAS) :]) is None:
            return None  # "No module named 'hf_gateway.x'", as for any missing module
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        real = importlib.import_module(_TARGET + spec.name[len(_ALIAS) :])
        # The import system stamps the alias spec on the module it gets; keep the real one.
        self._specs[spec.name] = real.__spec__
        return real

    def exec_module(self, module: types.ModuleType) -> None:
        if module.__spec__ is not None and module.__spec__.name in self._specs:
            module.__spec__ = self._specs.pop(module.__spec__.name)


if not any(isinstance(finder, _AliasFinder) for finder in sys.meta_path):
    sys.meta_path.insert(0, _AliasFinder())
sys.modules[_ALIAS] = gateway
