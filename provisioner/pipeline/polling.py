"""Polling the status of applications: fast at first, gently later, never flooding.

An application's status is polled every ``poll_initial`` seconds for its first
``poll_fast_seconds`` in a state, then the interval grows by ``poll_factor`` up to
``poll_max``. Fast at first on purpose: the time to the first created application is
the only part of a run the page budget cannot hide. Together, the applications polling
stay within ``status_share`` of QueryBatchRegisterDeviceStatus' budget (the interval
grows with their number). Applications submitted together finish together, so when one
reaches a final state the others are woken to poll at once, at most one budget-share of
them per wake-up.

The decisions (:func:`next_delay`, :func:`floor`) are pure; :class:`Poller` sleeps.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from provisioner.api.records import ApplyStatus
from provisioner.pipeline.settings import Tuning

__all__ = ["Poller", "floor", "next_delay"]


def next_delay(delay: float, elapsed: float, tuning: Tuning) -> float:
    """The interval after ``delay``, ``elapsed`` seconds into the stage."""
    if elapsed >= tuning.poll_fast_seconds:
        return min(delay * tuning.poll_factor, tuning.poll_max)
    return delay


def floor(polling: int, status_qps: float, tuning: Tuning) -> float:
    """The least interval of one of ``polling`` applications polling together."""
    return polling / (status_qps * tuning.status_share)


class Poller:
    """Polls one status query until it answers one of the final states."""

    def __init__(self, tuning: Tuning, status_qps: float) -> None:
        self.tuning = tuning
        self.status_qps = status_qps
        self.polling = 0
        self._wake = anyio.Event()
        self._wakes_left = 0

    async def until(
        self,
        query: Callable[[], Awaitable[ApplyStatus]],
        finals: frozenset[str],
        *,
        fresh: bool,
    ) -> ApplyStatus:
        """``query()`` until its status is in ``finals``; ``fresh``: wait a first interval."""
        tuning = self.tuning
        delay = tuning.poll_initial
        started = anyio.current_time()
        self.polling += 1
        try:
            if fresh:
                await self._nap(delay)
            while True:
                status = await query()
                if status.status in finals:
                    self._signal()
                    return status
                delay = next_delay(delay, anyio.current_time() - started, tuning)
                await self._nap(max(delay, floor(self.polling, self.status_qps, tuning)))
        finally:
            self.polling -= 1

    def _signal(self) -> None:
        # At most one budget-share of applications answer a signal, so a string of
        # applications finishing one after another cannot flood the status budget.
        self._wakes_left = max(1, int(self.status_qps * self.tuning.status_share))
        self._wake.set()
        self._wake = anyio.Event()

    async def _nap(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if another application reaches a final state."""
        deadline = anyio.current_time() + seconds
        while (left := deadline - anyio.current_time()) > 0:
            event = self._wake
            with anyio.move_on_after(left):
                await event.wait()
            if not event.is_set():
                return
            if self._wakes_left > 0:
                self._wakes_left -= 1
                return
