"""Per-operation QPS limits of IoT Platform and the client-side rate limiter.

The limits are per Alibaba Cloud account (shared by its RAM users, processes and
machines), so the limiter is keyed by AccessKeyId and operation. The server counts
requests in a strict one-second sliding window; the limiter paces the sends of each
operation evenly so that no window, widened by a safety margin, holds more than the
limit.

Other processes on the same account fill the same window, which only the server sees.
When it throttles a call, :meth:`Limiter.hold` pauses every later send of that
operation in this process until the server's ``retry_after`` has passed, rather than
keep sending into a closed window; pacing resumes after that.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

import anyio

__all__ = [
    "DEFAULT_QPS",
    "QPS_LIMITS",
    "QPS_MARGIN",
    "Clock",
    "Limiter",
    "SlidingWindowLimiter",
    "qps_for",
]

#: Widening of the limiter's one-second window against arrival jitter. The limiter
#: paces sends evenly; 0.02 and then 0.04 still let throttles through on a loaded
#: two-core box (at the start of an export, when three applications finish together),
#: and every percent of it is a percent of the page budget, the bound of the run.
QPS_MARGIN = 0.06

#: Documented per-account QPS of every operation the project calls.
QPS_LIMITS: Mapping[str, int] = {
    "BatchCheckDeviceNames": 10,
    "BatchRegisterDeviceWithApplyId": 500,
    "BatchRegisterDevice": 10,
    "QueryBatchRegisterDeviceStatus": 30,
    "QueryPageByApplyId": 50,
    "ImportDevice": 50,
    "CreateProduct": 50,
    "QueryProduct": 50,
    "RegisterDevice": 30,
    "QueryDeviceDetail": 50,
    "BatchQueryDeviceDetail": 5,
    "DeleteDevice": 50,
}

#: Limit assumed for an operation missing from the table (the most common figure).
DEFAULT_QPS = 50


def qps_for(operation: str, scale: float = 1.0) -> int:
    """The limit of ``operation``, multiplied by ``scale`` (never below 1)."""
    return max(1, int(QPS_LIMITS.get(operation, DEFAULT_QPS) * scale))


Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Limiter(Protocol):
    """What the client needs from a rate limiter: wait until ``operation`` may be sent;
    hold ``operation`` for ``seconds`` after a throttled answer."""

    async def acquire(self, operation: str) -> None: ...

    def hold(self, operation: str, seconds: float) -> None: ...


class SlidingWindowLimiter:
    """In-process limiter: at most ``qps`` sends of an operation in any window.

    Sends are paced evenly, one every ``(window + margin) / qps`` seconds, rather than
    let out in bursts of ``qps``: a burst queues up inside the client (signing, the
    connection pool, the event loop), and that queueing reaches the server as arrival
    jitter that a burst-then-wait limiter has no slack for. Evenly paced sends keep
    each window under the limit however the requests of a burst are reordered, at the
    same throughput. ``margin`` widens the window for the jitter that remains.

    ``scale`` multiplies every limit (for an emulator started with ``--qps-scale``);
    ``clock`` and ``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        access_key_id: str,
        *,
        scale: float = 1.0,
        window: float = 1.0,
        margin: float = 0.05,
        limits: Mapping[str, int] | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self.access_key_id = access_key_id
        self._scale = scale
        self._span = window + margin
        self._limits = dict(limits) if limits is not None else None
        self._clock = clock
        self._sleep = sleep
        self._next: dict[str, float] = {}
        self._held_until: dict[str, float] = {}
        self._locks: dict[str, anyio.Lock] = {}

    def limit(self, operation: str) -> int:
        if self._limits is not None and operation in self._limits:
            return max(1, int(self._limits[operation] * self._scale))
        return qps_for(operation, self._scale)

    async def acquire(self, operation: str) -> None:
        lock = self._locks.get(operation)
        if lock is None:
            lock = self._locks[operation] = anyio.Lock()
        interval = self._span / self.limit(operation)
        # One waiter at a time per operation keeps the order fair (FIFO on the lock).
        async with lock:
            now = self._clock()
            while True:
                due = max(self._next.get(operation, now), self._held_until.get(operation, now))
                if due <= now:
                    break
                # Checked again after the sleep: a hold may have come in meanwhile.
                await self._sleep(due - now)
                now = max(self._clock(), due)
            self._next[operation] = now + interval

    def hold(self, operation: str, seconds: float) -> None:
        """No send of ``operation`` before ``seconds`` from now (a throttled answer's
        ``retry_after``); a longer hold already in place stays."""
        until = self._clock() + max(0.0, seconds)
        if until > self._held_until.get(operation, float("-inf")):
            self._held_until[operation] = until
