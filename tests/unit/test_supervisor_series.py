"""The supervisor's own series: how an exit becomes a restart reason, and what a scrape of
the supervisor's registry shows next to the workers' files."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gateway import metrics


@pytest.mark.parametrize(
    ("code", "reason"),
    [(-9, "signal"), (-11, "signal"), (None, "signal"), (1, "error"), (0, "exited")],
)
def test_an_exit_code_names_its_reason(code: int | None, reason: str) -> None:
    assert metrics.restart_reason(code) == reason
    assert reason in metrics.RESTART_REASONS


def test_the_series_export_what_the_supervisor_set() -> None:
    registry = CollectorRegistry()
    workers = metrics.SupervisorGauge("test_workers", "Workers")
    restarts = metrics.SupervisorCounter("test_restarts", "Restarts", ("reason",), ("a", "b"))
    for series in (workers, restarts):
        registry.register(series)
    workers.set(2)
    restarts.inc("b")
    restarts.inc("b")
    assert registry.get_sample_value("test_workers") == 2
    assert registry.get_sample_value("test_restarts_total", {"reason": "a"}) == 0
    assert registry.get_sample_value("test_restarts_total", {"reason": "b"}) == 2
    text = generate_latest(registry).decode()
    assert "# TYPE test_restarts_total counter" in text or "# TYPE test_restarts counter" in text
    with pytest.raises(KeyError):
        restarts.inc("made_up")  # only the fixed set: labels stay bounded
