"""The one retry policy of the API client, over tenacity.

What is retried is decided by the error, not here: exactly the
:class:`~provisioner.errors.ProvisionerError` instances whose ``transient`` is true
(:class:`~provisioner.errors.TransportError`, :class:`~provisioner.errors.TransientApiError`
and its :class:`~provisioner.errors.ThrottledError`). Anything else, including bugs
and cancellation, goes straight through.

Throttling is never fatal by itself. A throttled answer means the account's QPS window
is full (another process or machine on the same AccessKey may be filling it); the call
did not run. So a throttled attempt does not count against ``max_attempts`` nor
``max_total_seconds``: the call waits the server's ``retry_after`` plus a little jitter
(so that two processes throttled together do not come back in lockstep), or backs off
when there is no hint, and tries again for as long as the run's ``deadline`` allows.
When the next try could not start before the deadline, the ThrottledError is raised
(the run stops, resumable).

Other transient errors back off exponentially from ``initial_wait`` to ``max_wait`` with
full jitter, so that many concurrent callers hit by one outage do not come back in
lockstep. They stop after ``max_attempts`` such attempts or ``max_total_seconds`` of
them, or when the next try could not start before the deadline; a backoff wait is cut
to the time left. An endpoint that gives no answer at all (every attempt a
:class:`~provisioner.errors.TransportError`) is given ``no_answer_seconds`` in all:
each attempt gets a third of it (cut to what is left) as its timeout, and when too
little is left the call ends with :class:`~provisioner.errors.NoAnswerError`. Otherwise
the last error is re-raised as it is (never ``tenacity.RetryError``).

Every decision is a pure method of :class:`RetryPolicy` (:meth:`~RetryPolicy.backoff`,
:meth:`~RetryPolicy.throttle_wait`, :meth:`~RetryPolicy.fits_deadline`,
:meth:`~RetryPolicy.attempt_timeout`) tested without I/O on an injected clock.

:func:`submit` is the one way to send a call that creates something (a check, a
creation, a registration, an import): it never sends blindly twice after a lost answer.

:func:`set_testing` / :func:`testing` remove every wait, like ``stamina.set_testing``,
so tests of code that retries run instantly; attempts and stop rules are unchanged.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from provisioner.errors import (
    NoAnswerError,
    ProvisionerError,
    TerminalApiError,
    ThrottledError,
    TransportError,
)

__all__ = [
    "ATTEMPTS_PER_NO_ANSWER",
    "RetryPolicy",
    "RetryStats",
    "Submitted",
    "error_code",
    "is_retryable",
    "is_testing",
    "set_testing",
    "submit",
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


#: One attempt may take this share of the no-answer time: three attempts fit in it.
ATTEMPTS_PER_NO_ANSWER = 3
# A last attempt with less than this share of a full attempt's time is not worth making.
_MIN_ATTEMPT_SHARE = 0.25
# Jitter added to a throttled call's wait: at least this, plus a share of the hint.
_THROTTLE_JITTER_BASE = 0.05
_THROTTLE_JITTER_SHARE = 0.1


@dataclass(slots=True)
class _CallState:
    """What one call of the policy has seen so far."""

    start: float
    failures: int = 0  # attempts that failed transiently, throttles not counted
    throttles: int = 0
    throttled_time: float = 0.0  # spent in throttled attempts and their waits
    silent_since: float | None = None  # start of the attempts that got no answer at all
    silent_attempts: int = 0
    reason: str | None = None  # why the policy gave up


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry transient errors with capped attempts and total time; throttles until a deadline.

    ``clock``, ``sleep`` and ``rng`` are injectable so tests can run on a fake clock and
    record the waits. ``stats`` is shared by every call made through this policy.
    Deadlines are absolute times on ``clock``.
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

    # --- decisions (pure) -------------------------------------------------------------

    def backoff(self, retry_number: int) -> float:
        """The wait before retry ``retry_number`` (from 1) when the server gave no hint."""
        # The exponent is capped: 2.0 ** 1100 overflows, and max_wait caps far below.
        ceiling = min(self.max_wait, self.initial_wait * 2.0 ** min(retry_number - 1, 64))
        return ceiling * self.rng() if self.jitter else ceiling

    def throttle_wait(self, exc: ThrottledError, throttles: int = 1) -> float:
        """The wait after the ``throttles``-th throttled answer of a call.

        The server's ``retry_after`` plus a little jitter (50 ms and up to a tenth of the
        hint), never less than the hint: earlier only burns quota, and two processes
        throttled together must not come back together. Without a hint, the backoff.
        """
        hint = exc.retry_after
        if hint is None:
            return self.backoff(throttles)
        if not self.jitter:
            return hint
        return hint + (_THROTTLE_JITTER_BASE + _THROTTLE_JITTER_SHARE * hint) * self.rng()

    @staticmethod
    def fits_deadline(now: float, wait: float, deadline: float | None) -> bool:
        """True when a try after ``wait`` seconds from ``now`` starts by ``deadline``."""
        return deadline is None or now + wait <= deadline

    @staticmethod
    def attempt_timeout(no_answer_seconds: float | None, silent_for: float | None) -> float | None:
        """The timeout of the next attempt: a third of the no-answer time, cut to what is
        left of it after ``silent_for`` seconds without an answer; ``None``: no limit."""
        if no_answer_seconds is None:
            return None
        full = no_answer_seconds / ATTEMPTS_PER_NO_ANSWER
        if silent_for is None:
            return full
        return max(0.0, min(full, no_answer_seconds - silent_for))

    @staticmethod
    def no_answer_spent(no_answer_seconds: float | None, silent_for: float) -> bool:
        """True when, ``silent_for`` seconds into a stretch without any answer, what is
        left of the no-answer time is too little for another attempt."""
        if no_answer_seconds is None:
            return False
        left = no_answer_seconds - silent_for
        return left < _MIN_ATTEMPT_SHARE * no_answer_seconds / ATTEMPTS_PER_NO_ANSWER

    # --- the loop ---------------------------------------------------------------------

    async def call(
        self, fn: Callable[[], Awaitable[T]], *, action: str, deadline: float | None = None
    ) -> T:
        """Await ``fn()`` until it succeeds, fails terminally or the budget is spent."""

        async def timed(_timeout: float | None) -> T:
            return await fn()

        return await self.call_timed(timed, action=action, deadline=deadline)

    async def call_timed(
        self,
        fn: Callable[[float | None], Awaitable[T]],
        *,
        action: str,
        deadline: float | None = None,
        no_answer_seconds: float | None = None,
        endpoint: str = "the endpoint",
    ) -> T:
        """Like :meth:`call`; ``fn`` gets the timeout of its attempt (``None``: none).

        With ``no_answer_seconds``, attempts that get no answer at all stop after about
        that long with :class:`~provisioner.errors.NoAnswerError` naming ``endpoint``.
        """
        state = _CallState(start=self.clock())
        self.stats.calls += 1

        def remaining() -> float:
            # Time spent throttled is not the transient errors' time.
            return self.max_total_seconds - (self.clock() - state.start - state.throttled_time)

        async def attempt() -> T:
            began = self.clock()
            silent_for = None if state.silent_since is None else began - state.silent_since
            try:
                return await fn(self.attempt_timeout(no_answer_seconds, silent_for))
            except TransportError:
                if state.silent_since is None:
                    state.silent_since = began
                state.silent_attempts += 1
                raise
            except ThrottledError:
                state.silent_since, state.silent_attempts = None, 0
                state.throttled_time += self.clock() - began
                raise
            except BaseException:
                state.silent_since, state.silent_attempts = None, 0
                raise

        def wait(retry_state: RetryCallState) -> float:
            # Runs before stop(): the counters are updated here, once per failure.
            exc = _exception(retry_state)
            if isinstance(exc, ThrottledError):
                state.throttles += 1
                seconds = self.throttle_wait(exc, state.throttles)
            else:
                state.failures += 1
                seconds = max(0.0, min(self.backoff(state.failures), remaining()))
            return 0.0 if _testing else seconds

        def stop(retry_state: RetryCallState) -> bool:
            # Runs after wait(), so the wait about to be taken is known here.
            exc = _exception(retry_state)
            now = self.clock()
            upcoming = retry_state.upcoming_sleep
            reason: str | None = None
            if isinstance(exc, ThrottledError):
                self.stats.throttled += 1
                if not self.fits_deadline(now, upcoming, deadline):
                    reason = "deadline"
            else:
                left = remaining()
                if state.failures >= self.max_attempts:
                    reason = "attempts"
                elif left <= 0 or (not _testing and upcoming > left):
                    reason = "total_time"
                elif not self.fits_deadline(now, upcoming, deadline):
                    reason = "deadline"
                elif (
                    isinstance(exc, TransportError)
                    and state.silent_since is not None
                    and self.no_answer_spent(no_answer_seconds, now + upcoming - state.silent_since)
                ):
                    reason = "no_answer"
            if reason is not None:
                state.reason = reason
                self.stats.gave_up += 1
                logger.warning(
                    "api.retry.gave_up",
                    action=action,
                    code=error_code(exc) if exc else None,
                    reason=reason,
                    attempts=retry_state.attempt_number,
                    elapsed_s=round(now - state.start, 3),
                )
            return reason is not None

        def before_sleep(retry_state: RetryCallState) -> None:
            exc = _exception(retry_state)
            code = error_code(exc) if exc else "unknown"
            self.stats.retries += 1
            self.stats.by_code[code] += 1
            throttled = isinstance(exc, ThrottledError)
            if throttled:
                state.throttled_time += retry_state.upcoming_sleep
            # Throttling is expected at full speed; anything else is worth a warning.
            log = logger.info if throttled else logger.warning
            log(
                "api.retry",
                action=action,
                code=code,
                attempt=retry_state.attempt_number,
                wait_s=round(retry_state.upcoming_sleep, 3),
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception(is_retryable),
            wait=wait,
            stop=stop,
            before_sleep=before_sleep,
            sleep=self.sleep,
            reraise=True,
        )
        try:
            return await retrying(attempt)
        except TransportError as exc:
            if state.reason != "no_answer" or no_answer_seconds is None:
                raise
            raise NoAnswerError(
                endpoint, no_answer_seconds, action=action, attempts=state.silent_attempts
            ) from exc


# --- submitting a call that creates something --------------------------------------


@dataclass(frozen=True, slots=True)
class Submitted(Generic[T]):
    """How :func:`submit` ended without an error of the run.

    ``answer``: the call's answer, if one came. ``refused``: the server's refusal (a
    terminal answer), if that is what came. ``uncertain``: an earlier attempt may have
    taken effect (its answer was lost). ``taken_effect``: the server, asked after a
    lost answer, said the call had taken effect (there is no answer then).
    ``unanswered``: the call may have taken effect and nobody can be asked; nothing was
    sent again (``error`` is why).
    """

    answer: T | None = None
    refused: TerminalApiError | None = None
    uncertain: bool = False
    taken_effect: bool = False
    unanswered: bool = False
    error: ProvisionerError | None = None


async def submit(
    send: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    attempts: int,
    ask: Callable[[], Awaitable[bool]] | None = None,
    resend_unasked: bool = False,
    resend_codes: Collection[str] = (),
) -> Submitted[T]:
    """Send a call that creates something on the server, at most once in effect.

    ``send`` makes one attempt through a client whose policy resends only throttled
    answers (a throttled call did not run; that policy waits for as long as the
    deadline allows and then raises the ThrottledError, which ends here too). A
    terminal answer is returned as ``refused``. After a transient error (or a terminal
    one whose code is in ``resend_codes``) the call may have run with its answer lost,
    so before sending again:

    * with ``ask``, the server is asked (``True``: it took effect, nothing is sent);
    * without it, the call is sent again only when ``resend_unasked`` (a second send
      is harmless: the server refuses a duplicate, and the caller settles that with
      ``uncertain``), else it ends ``unanswered``.

    Errors that are not transient (a silent endpoint, a failed handshake) are raised at
    once; after ``attempts`` transient failures the last one is raised (the last
    refusal with a code of ``resend_codes`` is returned as ``refused``).
    """
    uncertain = False
    for attempt in range(1, attempts + 1):
        try:
            return Submitted(answer=await send(), uncertain=uncertain)
        except ThrottledError:
            raise  # the deadline is spent: the call never ran
        except TerminalApiError as exc:
            if exc.code not in resend_codes or attempt == attempts:
                return Submitted(refused=exc, uncertain=uncertain or exc.code in resend_codes)
            error: ProvisionerError = exc
        except ProvisionerError as exc:
            if not exc.transient:
                raise
            error = exc
        uncertain = True
        if ask is not None:
            if await ask():
                return Submitted(uncertain=True, taken_effect=True, error=error)
        elif not resend_unasked:
            return Submitted(uncertain=True, unanswered=True, error=error)
        if attempt == attempts:
            raise error
        policy.stats.retries += 1
        policy.stats.by_code[error_code(error)] += 1
        await policy.sleep(0.0 if _testing else policy.backoff(attempt))
    raise AssertionError("not reached: the last attempt returns or raises")


def _exception(state: RetryCallState) -> BaseException | None:
    outcome = state.outcome
    if outcome is None or not outcome.failed:
        return None
    return outcome.exception()
