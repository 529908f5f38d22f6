"""Tests against real, heavy tools (Gradio): run by `make test-tools` in its own venv.

`make test` collects nothing here: gradio is not a dev dependency (it is large), and a test
that cannot run must not look like one that passed. `make test-tools` sets
HF_GATEWAY_TOOL_TESTS=1 and installs gradio into .venv/tools.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from tests

collect_ignore_glob = [] if os.environ.get("HF_GATEWAY_TOOL_TESTS") == "1" else ["test_*.py"]
