"""The one retry policy of the API client, over tenacity.

What is retried is decided by the error, not here: exactly the
:class:`~provisioner.errors.ProvisionerError` instances whose ``transient`` is true
(:class:`~provisioner.errors.TransportError`, :class:`~provisioner.errors.TransientApiError`
and its :class:`~provisioner.errors.ThrottledError`). Anything else, including bugs
and cancellation, goes straight through.

Waits: a throttled answer's ``retry_after`` is honoured as given (the server knows when
its window reopens; asking earlier only burns quota). Other errors back off
exponentially from ``initial_wait`` to ``max_wait`` with full jitter, so that many
concurrent callers hit by one outage do not come back in lockstep. The policy stops
after ``max_attempts`` attempts or ``max_total_seconds`` since the first one; a backoff
wait is cut to the time left, and a ``retry_after`` that does not fit in the time left
ends the retries at once rather than sending early into a closed window. The last error
is re-raised as it is (never ``tenacity.RetryError``).

:func:`set_testing` / :func:`testing` remove every wait, like ``stamina.set_testing``,
so tests of code that retries run instantly; attempts and stop rules are unchanged.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from provisioner.errors import ProvisionerError, ThrottledError

__all__ = [
    "RetryPolicy",
    "RetryStats",
    "error_code",
    "is_retryable",
    "is_testing",
    "set_testing",
    "testing",
]

T = TypeVar("T")

logger = structlog.get_logger(__name__)

_testing = False


def set_testing(enabled: bool) -> None:
    """Remove (``True``) or restore (``False``) every retry wait, process-wide."""
    global _testing
    _testing = enabled


def is_testing() -> bool:
    return _testing


@contextmanager
def testing() -> Iterator[None]:
    """No retry waits inside a ``with`` block; the previous mode afterwards.

    Use it as ``retry.testing()``: imported by its bare name into a test module,
    pytest would collect it as a test.
    """
    previous = _testing
    set_testing(True)
    try:
        yield
    finally:
        set_testing(previous)


def is_retryable(exc: BaseException) -> bool:
    """True for the errors the policy retries: provisioner errors marked transient."""
    return isinstance(exc, ProvisionerError) and exc.transient


def error_code(exc: BaseException) -> str:
    """A short label of an error for logs and counters: the API Code, else the class."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and code else type(exc).__name__


@dataclass(slots=True)
class RetryStats:
    """What the policy saw, for the run report: retries made and throttled answers."""

    calls: int = 0
    retries: int = 0
    throttled: int = 0
    gave_up: int = 0
    by_code: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, object]:
        return {
            "calls": self.calls,
            "retries": self.retries,
            "throttled": self.throttled,
            "gave_up": self.gave_up,
            "by_code": dict(self.by_code),
        }


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry transient errors with capped attempts and total time.

    ``clock``, ``sleep`` and ``rng`` are injectable so tests can run on a fake clock and
    record the waits. ``stats`` is shared by every call made through this policy.
    """

    max_attempts: int = 8
    max_total_seconds: float = 300.0
    initial_wait: float = 0.2
    max_wait: float = 10.0
    jitter: bool = True
    stats: RetryStats = field(default_factory=RetryStats, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    sleep: Callable[[float], Awaitable[None]] = field(
        default=anyio.sleep, repr=False, compare=False
    )
    rng: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.max_total_seconds < 0 or self.initial_wait < 0 or self.max_wait < 0:
            raise ValueError("retry times must not be negative")

    def backoff(self, retry_number: int) -> float:
        """The wait before retry ``retry_number`` (from 1) when the server gave no hint."""
        # The exponent is capped: 2.0 ** 1100 overflows, and max_wait caps far below.
        ceiling = min(self.max_wait, self.initial_wait * 2.0 ** min(retry_number - 1, 64))
        return ceiling * self.rng() if self.jitter else ceiling

    async def call(self, fn: Callable[[], Awaitable[T]], *, action: str) -> T:
        """Await ``fn()`` until it succeeds, fails terminally or the budget is spent."""
        start = self.clock()
        self.stats.calls += 1

        def remaining() -> float:
            return self.max_total_seconds - (self.clock() - start)

        def wait(state: RetryCallState) -> float:
            if _testing:
                return 0.0
            exc = _exception(state)
            if isinstance(exc, ThrottledError) and exc.retry_after is not None:
                return exc.retry_after
            return max(0.0, min(self.backoff(state.attempt_number), remaining()))

        def stop(state: RetryCallState) -> bool:
            # Runs after wait(), so the wait about to be taken is known here.
            exc = _exception(state)
            if isinstance(exc, ThrottledError):
                self.stats.throttled += 1
            left = remaining()
            out_of_budget = (
                state.attempt_number >= self.max_attempts
                or left <= 0
                or (not _testing and state.upcoming_sleep > left)
            )
            if out_of_budget:
                self.stats.gave_up += 1
                logger.warning(
                    "api.retry.gave_up",
                    action=action,
                    code=error_code(exc) if exc else None,
                    attempts=state.attempt_number,
                    elapsed_s=round(self.clock() - start, 3),
                )
            return out_of_budget

        def before_sleep(state: RetryCallState) -> None:
            exc = _exception(state)
            code = error_code(exc) if exc else "unknown"
            self.stats.retries += 1
            self.stats.by_code[code] += 1
            # Throttling is expected at full speed; anything else is worth a warning.
            log = logger.info if isinstance(exc, ThrottledError) else logger.warning
            log(
                "api.retry",
                action=action,
                code=code,
                attempt=state.attempt_number,
                wait_s=round(state.upcoming_sleep, 3),
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception(is_retryable),
            wait=wait,
            stop=stop,
            before_sleep=before_sleep,
            sleep=self.sleep,
            reraise=True,
        )
        return await retrying(fn)


def _exception(state: RetryCallState) -> BaseException | None:
    outcome = state.outcome
    if outcome is None or not outcome.failed:
        return None
    return outcome.exception()
