"""docs/security.md's case table cannot drift from the tests it counts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_security_case_table_is_current() -> None:
    """The table equals what scripts/security_cases.py counts now, and every test a
    section cites exists (run `make docs` after changing security tests)."""
    result = subprocess.run(
        [sys.executable, "scripts/security_cases.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
