"""Reconnect backoff for the session store (gateway/session/backoff.py): pure, clock
injected."""

from __future__ import annotations

import pytest

from gateway.session.backoff import Backoff, ReconnectGate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_delays_double_up_to_the_cap_and_start_over_after_a_reset() -> None:
    """Without jitter: 0.1, 0.2, 0.4, then the cap; a reset starts again at the first."""
    backoff = Backoff(0.1, 0.5, jitter=lambda: 0.0)
    assert [round(backoff.delay(), 3) for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.delay() == 0.1


def test_jitter_only_shortens_a_delay_and_by_half_at_most() -> None:
    """Full jitter halves a delay; callers never wait longer than the sequence says."""
    assert Backoff(1.0, 1.0, jitter=lambda: 1.0).delay() == 0.5
    assert Backoff(1.0, 1.0, jitter=lambda: 0.0).delay() == 1.0


def gate(clock: Clock) -> ReconnectGate:
    return ReconnectGate(Backoff(1.0, 4.0, jitter=lambda: 0.0), probe_limit=10.0, clock=clock)


def test_a_healthy_store_admits_every_call() -> None:
    """Nothing failed: no call is refused."""
    clock = Clock()
    healthy = gate(clock)
    assert [healthy.refusal() for _ in range(3)] == [None, None, None]


def test_after_a_failure_calls_are_refused_until_the_delay_has_passed() -> None:
    """The first failure says so (to be logged once); calls are refused with the wait."""
    clock = Clock()
    down = gate(clock)
    assert down.failed() is True
    assert down.refusal() == 1.0
    clock.now += 0.6
    assert down.refusal() == pytest.approx(0.4)


def test_only_one_call_probes_a_store_that_may_be_back() -> None:
    """Once the delay has passed one call goes through; the others wait for its answer."""
    clock = Clock()
    down = gate(clock)
    down.failed()
    clock.now += 1.0
    assert down.refusal() is None
    assert down.refusal() is not None


def test_a_failed_probe_doubles_the_delay_and_a_success_reopens() -> None:
    """Probe fails: the next wait is 2 s. Probe succeeds: every call is admitted again,
    and it is reported once as back."""
    clock = Clock()
    down = gate(clock)
    down.failed()
    clock.now += 1.0
    assert down.refusal() is None
    assert down.failed() is False
    assert down.refusal() == 2.0
    clock.now += 2.0
    assert down.refusal() is None
    assert down.succeeded() is True
    assert down.succeeded() is False
    assert down.refusal() is None


def test_failures_of_calls_already_in_flight_count_as_the_same_outage() -> None:
    """Fifty requests failing at once when Redis dies do not push the delay to the cap."""
    clock = Clock()
    down = gate(clock)
    down.failed()
    for _ in range(50):
        down.failed()
    assert down.refusal() == 1.0


def test_a_lost_probe_does_not_lock_the_store_out() -> None:
    """A probe that never reports (its request was cancelled) is given up after
    probe_limit; then another call may probe."""
    clock = Clock()
    down = gate(clock)
    down.failed()
    clock.now += 1.0
    assert down.refusal() is None
    clock.now += 10.0
    assert down.refusal() is None


def test_a_reset_admits_calls_at_once() -> None:
    """The master moved: the new one is tried without waiting out the old one's delay."""
    clock = Clock()
    down = gate(clock)
    down.failed()
    down.reset()
    assert down.refusal() is None
    assert down.down is False
