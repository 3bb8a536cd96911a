"""Sign-in throttling per client address, on top of the per-account lock.

The per-account lock (:mod:`workbench.accounts.users`: 5 failures, then 30 s doubling to
15 min) stops guessing one account's password, not one client trying a common password on
many accounts. So each server process also counts failed sign-ins per client address: after
:data:`FAILURES` failures within :data:`WINDOW_SECONDS`, that address is refused (HTTP 429,
before any password is checked) until the oldest of them is older than the window, whatever
the user name. Twenty in ten minutes is four accounts' worth of the per-account lock, more
than a shared office address mistyping makes, and holds a sprayer to two guesses a minute.
A success does not reset the count (a valid account of the attacker's would otherwise).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from workbench.dashboards.errors import SignInThrottledError

__all__ = ["FAILURES", "MAX_ADDRESSES", "WINDOW_SECONDS", "AddressThrottle"]

FAILURES = 20
WINDOW_SECONDS = 600.0
#: Addresses remembered at most (the least recently failing are forgotten first), so a flood
#: of addresses cannot exhaust the server's memory.
MAX_ADDRESSES = 10_000


class AddressThrottle:
    """Failed sign-ins per client address in a sliding window, for one server process."""

    def __init__(
        self,
        *,
        failures: int = FAILURES,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.window = window
        self._clock = clock
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float] | None:
        times = self._seen.get(address)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._seen[address]
            return None
        return times

    def check(self, address: str) -> None:
        """:class:`SignInThrottledError` when ``address`` may not try to sign in now."""
        now = self._clock()
        with self._lock:
            times = self._recent(address, now)
            if times is None or len(times) < self.failures:
                return
            wait = times[-self.failures] + self.window - now
        minutes = max(1, math.ceil(wait / 60))
        raise SignInThrottledError(
            f"Too many failed sign-ins came from your address: try again in {minutes} "
            f"minute{'s' if minutes != 1 else ''}, or ask your Workbench administrator.",
            retry_after=max(1, math.ceil(wait)),
        )

    def failed(self, address: str) -> None:
        """Count a failed sign-in of ``address``."""
        now = self._clock()
        with self._lock:
            times = self._recent(address, now) or deque()
            times.append(now)
            self._seen[address] = times
            self._seen.move_to_end(address)
            while len(self._seen) > MAX_ADDRESSES:
                self._seen.popitem(last=False)
