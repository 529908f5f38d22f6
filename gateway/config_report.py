"""Load a configuration for a CLI verb, printing every problem at its key on failure."""

from __future__ import annotations

from typing import TextIO

from gateway.config import GatewayConfig, load_config
from gateway.errors import ConfigError


def load_or_report(path: str, err: TextIO) -> GatewayConfig | None:
    """The configuration at ``path``, or None after printing its problems to ``err``."""
    try:
        return load_config(path)
    except ConfigError as exc:
        count = len(exc.problems)
        print(
            f"{path}: invalid configuration ({count} problem{'' if count == 1 else 's'})",
            file=err,
        )
        for problem in exc.problems:
            print(f"  {problem}", file=err)
        return None
