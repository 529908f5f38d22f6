"""Spacing out reconnect attempts at a store that is down. Pure: the clock is injected.

``Backoff`` is the delay sequence (doubling, with jitter, up to a cap). ``ReconnectGate``
applies it to the request path: once the store has failed, calls are refused at once
(the caller answers 503) until the delay has passed; then a single call probes, and the
store is in use again as soon as one succeeds. A thousand requests a second against a
dead Redis then cost it a few connection attempts, not a thousand, and none of them waits
out a connect timeout.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class Backoff:
    """Delays of ``first``, doubling up to ``cap``, each with up to 50 % jitter off."""

    def __init__(
        self,
        first: float,
        cap: float,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.first = first
        self.cap = cap
        self._jitter = jitter
        self._next = first

    def delay(self) -> float:
        """The next delay; every call doubles the one after it (up to the cap)."""
        current = self._next
        self._next = min(self.cap, current * 2)
        return current * (1 - 0.5 * self._jitter())

    def reset(self) -> None:
        self._next = self.first


class ReconnectGate:
    """Which calls may try the store while it is down (see the module docstring)."""

    def __init__(
        self,
        backoff: Backoff,
        *,
        probe_limit: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backoff = backoff
        self._probe_limit = probe_limit
        """A probe that has not reported after this long is taken for lost (cancelled)."""
        self._clock = clock
        self._down = False
        self._retry_at = 0.0
        self._probe_until = 0.0

    @property
    def down(self) -> bool:
        return self._down

    def refusal(self) -> float | None:
        """None when a call may go to the store now, else the seconds until one may."""
        if not self._down:
            return None
        now = self._clock()
        if now < self._retry_at:
            return self._retry_at - now
        if now < self._probe_until:
            return self._probe_until - now  # another call is probing
        self._probe_until = now + self._probe_limit
        return None

    def failed(self) -> bool:
        """A call could not reach the store; True when this is the first such failure."""
        first = not self._down
        now = self._clock()
        if not first and now < self._retry_at:
            return False  # a call that began before the store went down: same outage
        self._down = True
        self._retry_at = now + self._backoff.delay()
        self._probe_until = 0.0
        return first

    def succeeded(self) -> bool:
        """A call reached the store; True when it had been down."""
        was_down = self._down
        if was_down:
            self._down = False
            self._backoff.reset()
        return was_down

    def reset(self) -> None:
        """Forget past failures (the store moved: the next call tries the new one at once)."""
        self.succeeded()
        self._retry_at = self._probe_until = 0.0
