"""Per-account, per-operation QPS enforcement: a strict one-second sliding window.

A request of ``action`` from ``access_key_id`` is accepted when fewer than
``qps_limit(action, qps_scale)`` requests of the same pair were accepted in the
second before it (arrival times ``t`` with ``now - 1 < t <= now``). The limits are the
emulator's own (:mod:`provisioner.emulator.qps`), not the client's. A throttled
request does not count in the window. The throttle answers with the milliseconds
until the oldest request of the window leaves it (``x-acs-retry-after``).

For tests and benchmarks it also keeps the arrival times of accepted requests
(the most recent ``history`` of each pair), the largest number of accepted
requests seen in any one-second window, and the number of throttled requests.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Mapping

from provisioner.emulator.qps import qps_limit

__all__ = ["WINDOW_SECONDS", "Throttle", "ThrottleKey"]

WINDOW_SECONDS = 1.0

ThrottleKey = tuple[str, str]


class Throttle:
    """Sliding-window counters keyed by (AccessKeyId, action)."""

    def __init__(
        self,
        qps_scale: float = 1.0,
        *,
        limits: Mapping[str, int] | None = None,
        history: int = 100_000,
    ) -> None:
        self.qps_scale = qps_scale
        self._limits = dict(limits) if limits is not None else {}
        self._history_size = history
        self._window: dict[ThrottleKey, deque[float]] = {}
        self._history: dict[ThrottleKey, deque[float]] = {}
        self.max_in_window: Counter[ThrottleKey] = Counter()
        self.throttled: Counter[ThrottleKey] = Counter()

    def limit(self, action: str) -> int:
        if action in self._limits:
            return max(1, int(self._limits[action] * self.qps_scale))
        return qps_limit(action, self.qps_scale)

    def admit(self, access_key_id: str, action: str, now: float) -> int | None:
        """Record an accepted request and return ``None``, or the retry-after in ms."""
        key = (access_key_id, action)
        window = self._window.get(key)
        if window is None:
            window = self._window[key] = deque()
            self._history[key] = deque(maxlen=self._history_size)
        edge = now - WINDOW_SECONDS
        while window and window[0] <= edge:
            window.popleft()
        if len(window) >= self.limit(action):
            self.throttled[key] += 1
            return max(1, math.ceil((window[0] - edge) * 1000))
        window.append(now)
        self._history[key].append(now)
        if len(window) > self.max_in_window[key]:
            self.max_in_window[key] = len(window)
        return None

    def arrivals(self, access_key_id: str, action: str) -> list[float]:
        """Arrival times of the accepted requests of a pair (the most recent ``history``)."""
        return list(self._history.get((access_key_id, action), ()))

    def max_per_window(self, access_key_id: str, action: str) -> int:
        """Most accepted requests of a pair seen in any one-second window."""
        return self.max_in_window[(access_key_id, action)]

    def total_throttled(self) -> int:
        return sum(self.throttled.values())
