"""Keeping this process under 17TRACK's request rate (about 3 requests per second).

17TRACK answers HTTP 429 past its limit; a client that keeps calling only collects more
429s. :class:`RateLimiter` hands out start times so that no more than ``burst`` calls start
in any window of ``burst / requests_per_second`` seconds (plus a small margin for network
jitter, so the server, which sees arrival times, agrees). A call whose slot is further away
than ``max_wait_seconds`` is refused with ``ProviderThrottled`` instead of being queued:
SCALE-9, a worker must not sit on a long queue.

The limiter counts this process only. Several processes sharing one 17TRACK key each get
their share through ``requests_per_second``.
"""

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

from pixecom_core.providers import ProviderThrottled

#: ``(seconds) -> None``: ``asyncio.sleep`` in production, a recorder in tests.
Sleep = Callable[[float], Awaitable[None]]
#: Monotonic seconds.
Clock = Callable[[], float]

#: Added to every window: a call started just after the window closes may still arrive at
#: 17TRACK just before it does (the request before it may have travelled faster).
JITTER_MARGIN_SECONDS: Final = 0.05


class RateLimiter:
    """Spaces out calls so that at most ``burst`` start in any ``window_seconds``.

    ``burst`` is ``floor(requests_per_second)`` (at least 1) and the window is
    ``burst / requests_per_second`` plus :data:`JITTER_MARGIN_SECONDS`: 3 per second gives
    3 calls per 1.05 s, 1.5 per second gives 1 call per 0.72 s.

    Reserving a slot is synchronous (no ``await`` between reading and recording it), so
    concurrent tasks on one event loop never get the same slot and no lock is needed.

    :param requests_per_second: the sustained rate allowed.
    :param max_wait_seconds: the longest wait for a slot; a longer one raises.
    :param provider: named in ``ProviderThrottled``.
    :param clock: monotonic seconds (injectable for tests).
    :param sleep: how to wait (injectable for tests).
    """

    def __init__(
        self,
        requests_per_second: float,
        *,
        max_wait_seconds: float,
        provider: str,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if requests_per_second <= 0:
            raise ValueError(f"requests_per_second must be positive, not {requests_per_second}")
        self.burst = max(1, math.floor(requests_per_second))
        self.window_seconds = self.burst / requests_per_second + JITTER_MARGIN_SECONDS
        self._max_wait_seconds = max_wait_seconds
        self._provider = provider
        self._clock = clock
        self._sleep = sleep
        # the start times of the last ``burst`` calls, oldest first; bounded by ``burst``
        self._starts: deque[float] = deque(maxlen=self.burst)

    def next_start(self) -> float:
        """When the next call could start if it asked now (monotonic seconds)."""
        now = self._clock()
        start = now
        if self._starts:
            # keep the order of reservations: a later caller never starts before an earlier one
            start = max(start, self._starts[-1])
        if len(self._starts) == self.burst:
            start = max(start, self._starts[0] + self.window_seconds)
        return start

    async def acquire(self) -> None:
        """Wait for a slot, then return; the caller starts its request right away.

        :raises ProviderThrottled: the slot is more than ``max_wait_seconds`` away;
            ``retry_after_seconds`` is how far.
        """
        start = self.next_start()
        wait = start - self._clock()
        if wait > self._max_wait_seconds:
            raise ProviderThrottled(
                f"17TRACK rate limit: the next of {self.burst} calls per "
                f"{self.window_seconds:.2f} s is {wait:.1f} s away (more than the "
                f"{self._max_wait_seconds:g} s a call may wait)",
                retry_after_seconds=wait,
                provider=self._provider,
            )
        self._starts.append(start)
        if wait > 0:
            await self._sleep(wait)
