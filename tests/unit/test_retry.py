"""provisioner.api.retry: what is retried, how long it waits, when it stops."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from provisioner.api import retry
from provisioner.api.retry import RetryPolicy
from provisioner.errors import (
    AuthenticationError,
    NoAnswerError,
    TerminalApiError,
    ThrottledError,
    TransientApiError,
    TransportError,
)

pytestmark = pytest.mark.anyio


class FakeTime:
    """A clock that only moves when the policy sleeps; records every wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def no_testing_mode() -> Iterator[None]:
    previous = retry.is_testing()
    retry.set_testing(False)
    yield
    retry.set_testing(previous)


def _policy(fake: FakeTime, **kw: object) -> RetryPolicy:
    options: dict[str, object] = {
        "max_attempts": 5,
        "max_total_seconds": 100.0,
        "initial_wait": 0.2,
        "max_wait": 1.0,
        "jitter": False,
    }
    options.update(kw)
    return RetryPolicy(clock=fake.clock, sleep=fake.sleep, **options)  # type: ignore[arg-type]


def _failing(
    errors: list[BaseException], result: str = "ok"
) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """fn raising ``errors`` one per call, then returning ``result``; and its call count."""
    calls = [0]

    async def fn() -> str:
        calls[0] += 1
        if errors:
            raise errors.pop(0)
        return result

    return fn, calls


def _transient(code: str = "iot.system.SystemException") -> TransientApiError:
    return TransientApiError("A", code, "m")


async def test_testing_mode_removes_waits_and_keeps_attempts(fake: FakeTime) -> None:
    fn, calls = _failing([_transient() for _ in range(10)])
    policy = _policy(fake, max_attempts=4, initial_wait=5.0, max_wait=60.0)
    with retry.testing():
        assert retry.is_testing()
        with pytest.raises(TransientApiError):
            await policy.call(fn, action="A")
    assert not retry.is_testing()
    assert calls[0] == 4
    assert fake.waits == [0.0, 0.0, 0.0]


async def test_exponential_backoff_capped(fake: FakeTime, no_testing_mode: None) -> None:
    fn, calls = _failing([_transient() for _ in range(5)])
    policy = _policy(fake, max_attempts=6)
    assert await policy.call(fn, action="A") == "ok"
    assert calls[0] == 6
    assert fake.waits == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0])
    assert policy.stats.retries == 5
    assert policy.stats.by_code == {"iot.system.SystemException": 5}


async def test_full_jitter_scales_the_ceiling(fake: FakeTime, no_testing_mode: None) -> None:
    fn, _ = _failing([_transient(), _transient()])
    policy = _policy(fake, jitter=True, rng=lambda: 0.5)
    await policy.call(fn, action="A")
    assert fake.waits == pytest.approx([0.1, 0.2])


async def test_gives_up_after_max_attempts_with_the_original_error(
    fake: FakeTime, no_testing_mode: None
) -> None:
    errors: list[BaseException] = [_transient(f"E{i}") for i in range(10)]
    last = errors[2]
    fn, calls = _failing(errors)
    policy = _policy(fake, max_attempts=3)
    with pytest.raises(TransientApiError) as info:
        await policy.call(fn, action="A")
    assert info.value is last
    assert calls[0] == 3
    assert policy.stats.retries == 2
    assert policy.stats.gave_up == 1


@pytest.mark.parametrize(
    "error",
    [
        TerminalApiError("A", "iot.device.AlreadyExistedDeviceName", "m"),
        AuthenticationError("A", "SignatureDoesNotMatch", "m"),
        KeyError("bug"),
    ],
    ids=["terminal", "auth", "bug"],
)
async def test_never_retries_terminal_errors(
    fake: FakeTime, no_testing_mode: None, error: BaseException
) -> None:
    fn, calls = _failing([error])
    policy = _policy(fake)
    with pytest.raises(type(error)) as info:
        await policy.call(fn, action="A")
    assert info.value is error
    assert calls[0] == 1
    assert fake.waits == []
    assert policy.stats.retries == 0


async def test_honours_retry_after(fake: FakeTime, no_testing_mode: None) -> None:
    fn, _ = _failing([ThrottledError("A", "Throttling.User", "m", retry_after=2.5)])
    policy = _policy(fake, max_wait=1.0)
    assert await policy.call(fn, action="A") == "ok"
    # Not cut to max_wait: the server said when its window reopens.
    assert fake.waits == [2.5]
    assert policy.stats.throttled == 1
    assert policy.stats.retries == 1


async def test_throttled_without_hint_backs_off(fake: FakeTime, no_testing_mode: None) -> None:
    fn, _ = _failing(
        [ThrottledError("A", "Throttling", "m"), ThrottledError("A", "Throttling", "m")]
    )
    policy = _policy(fake)
    await policy.call(fn, action="A")
    assert fake.waits == pytest.approx([0.2, 0.4])
    assert policy.stats.throttled == 2
    assert policy.stats.by_code == {"Throttling": 2}


async def test_stops_at_max_total_seconds(fake: FakeTime, no_testing_mode: None) -> None:
    fn, calls = _failing([_transient() for _ in range(10)])
    policy = _policy(fake, max_attempts=100, max_total_seconds=1.0, initial_wait=0.4, max_wait=10.0)
    with pytest.raises(TransientApiError):
        await policy.call(fn, action="A")
    # 0.4, then 0.8 cut to the 0.6 left; at 1.0 s the budget is spent.
    assert fake.waits == pytest.approx([0.4, 0.6])
    assert calls[0] == 3


async def test_retry_after_beyond_the_deadline_gives_up_at_once(
    fake: FakeTime, no_testing_mode: None
) -> None:
    # Was: a retry_after beyond max_total_seconds gave up. Throttles are bound by the
    # run's deadline instead; a hint that cannot fit before it raises at once.
    throttled = ThrottledError("A", "Throttling", "m", retry_after=30.0)
    fn, calls = _failing([throttled])
    policy = _policy(fake, max_total_seconds=10.0)
    with pytest.raises(ThrottledError) as info:
        await policy.call(fn, action="A", deadline=fake.now + 20.0)
    assert info.value is throttled
    assert calls[0] == 1
    assert fake.waits == []
    assert policy.stats.gave_up == 1


async def test_slow_attempts_count_against_the_budget(
    fake: FakeTime, no_testing_mode: None
) -> None:
    calls = [0]

    async def slow() -> str:
        calls[0] += 1
        fake.now += 4.0  # each attempt takes 4 s of the 10 s budget
        raise TransportError("no answer")

    policy = _policy(fake, max_attempts=100, max_total_seconds=10.0)
    with pytest.raises(TransportError):
        await policy.call(slow, action="A")
    assert calls[0] == 3
    assert policy.stats.by_code == {"TransportError": 2}


async def test_transport_errors_are_retried(fake: FakeTime) -> None:
    fn, calls = _failing([TransportError("x"), TransportError("y")])
    policy = _policy(fake)
    with retry.testing():
        assert await policy.call(fn, action="A") == "ok"
    assert calls[0] == 3


async def test_logs_each_retry(fake: FakeTime, no_testing_mode: None) -> None:
    fn, _ = _failing([ThrottledError("Act", "Throttling", "m", retry_after=1.0), _transient()])
    policy = _policy(fake)
    with capture_logs() as logs:
        await policy.call(fn, action="Act")
    retries = [e for e in logs if e["event"] == "api.retry"]
    assert retries == [
        {
            "event": "api.retry",
            "log_level": "info",
            "action": "Act",
            "code": "Throttling",
            "attempt": 1,
            "wait_s": 1.0,
        },
        {
            "event": "api.retry",
            "log_level": "warning",
            "action": "Act",
            "code": "iot.system.SystemException",
            "attempt": 2,
            # The first transient failure: a throttle before it does not grow the backoff.
            "wait_s": 0.2,
        },
    ]


async def test_stats_are_shared_across_calls(fake: FakeTime) -> None:
    policy = _policy(fake)
    with retry.testing():
        for _ in range(3):
            fn, _ = _failing([_transient()])
            await policy.call(fn, action="A")
    assert policy.stats.calls == 3
    assert policy.stats.retries == 3
    assert policy.stats.snapshot()["by_code"] == {"iot.system.SystemException": 3}


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(max_wait=-1)
    assert RetryPolicy(initial_wait=1.0, max_wait=30.0, jitter=False).backoff(10_000) == 30.0


# --- throttling is never fatal; the run's deadline bounds it ----------------------------


def _throttled(hint: float | None = 1.0) -> ThrottledError:
    return ThrottledError("A", "Throttling.User", "m", retry_after=hint)


async def test_throttles_do_not_consume_attempts(fake: FakeTime, no_testing_mode: None) -> None:
    # Two factory lines on one AccessKey: twenty throttles in a row, then the window opens.
    fn, calls = _failing([_throttled() for _ in range(20)])
    policy = _policy(fake, max_attempts=2, max_total_seconds=5.0)
    assert await policy.call(fn, action="A") == "ok"
    assert calls[0] == 21
    assert fake.waits == [1.0] * 20
    assert policy.stats.throttled == 20
    assert policy.stats.gave_up == 0


async def test_time_spent_throttled_is_not_the_transient_budget(
    fake: FakeTime, no_testing_mode: None
) -> None:
    errors: list[BaseException] = [_throttled(5.0) for _ in range(10)]
    errors += [_transient(), _transient()]
    fn, calls = _failing(errors)
    policy = _policy(fake, max_attempts=3, max_total_seconds=10.0)
    assert await policy.call(fn, action="A") == "ok"
    assert calls[0] == 13
    # The transient errors back off from the start: throttles did not grow their backoff.
    assert fake.waits == pytest.approx([5.0] * 10 + [0.2, 0.4])


Outcome = tuple[str, float | None]


@settings(max_examples=150, deadline=None)
@given(
    outcomes=st.lists(
        st.one_of(
            st.tuples(st.just("throttled"), st.one_of(st.none(), st.floats(0.0, 5.0))),
            st.tuples(st.just("transient"), st.none()),
        ),
        max_size=40,
    ),
    max_attempts=st.integers(min_value=1, max_value=6),
)
def test_only_other_transient_errors_count_as_attempts(
    outcomes: list[Outcome], max_attempts: int
) -> None:
    fake = FakeTime()
    errors: list[BaseException] = [
        _throttled(hint) if kind == "throttled" else _transient(f"E{i}")
        for i, (kind, hint) in enumerate(outcomes)
    ]
    expected_errors = list(errors)
    fn, calls = _failing(errors)
    policy = _policy(fake, max_attempts=max_attempts, max_total_seconds=1e9)
    transient_at = [i for i, (kind, _) in enumerate(outcomes) if kind == "transient"]
    previous = retry.is_testing()
    retry.set_testing(False)
    try:
        if len(transient_at) < max_attempts:
            assert anyio.run(lambda: policy.call(fn, action="A")) == "ok"
            assert calls[0] == len(outcomes) + 1
        else:
            last = transient_at[max_attempts - 1]
            with pytest.raises(TransientApiError) as info:
                anyio.run(lambda: policy.call(fn, action="A"))
            assert info.value is expected_errors[last]
            assert calls[0] == last + 1
    finally:
        retry.set_testing(previous)
    # A throttle with a hint waits exactly the hint (no jitter here), never less.
    hinted = [h for kind, h in outcomes[: calls[0]] if kind == "throttled" and h is not None]
    assert all(w in fake.waits for w in hinted)


@settings(max_examples=150, deadline=None)
@given(
    hints=st.lists(st.floats(0.0, 3.0), min_size=1, max_size=30),
    deadline=st.floats(0.0, 30.0),
    rng=st.floats(0.0, 1.0, exclude_max=True),
)
def test_throttled_calls_go_on_until_the_deadline(
    hints: list[float], deadline: float, rng: float
) -> None:
    fake = FakeTime()
    start = fake.now
    fn, calls = _failing([_throttled(h) for h in hints])
    policy = _policy(fake, jitter=True, rng=lambda: rng, max_attempts=1, max_total_seconds=0.0)
    previous = retry.is_testing()
    retry.set_testing(False)
    try:
        expected_waits = [h + (0.05 + 0.1 * h) * rng for h in hints]
        ends = [start + sum(expected_waits[: i + 1]) for i in range(len(hints))]
        fits = [end <= start + deadline for end in ends]
        if all(fits):
            assert anyio.run(lambda: policy.call(fn, action="A", deadline=start + deadline)) == "ok"
        else:
            with pytest.raises(ThrottledError):
                anyio.run(lambda: policy.call(fn, action="A", deadline=start + deadline))
            assert calls[0] == fits.index(False) + 1
    finally:
        retry.set_testing(previous)
    # Every wait honours the hint plus jitter, and every try starts before the deadline.
    assert fake.waits == pytest.approx(expected_waits[: len(fake.waits)])
    assert all(w >= h for w, h in zip(fake.waits, hints, strict=False))
    assert fake.now <= start + deadline + 1e-9


def test_throttle_jitter_spreads_two_processes() -> None:
    early = RetryPolicy(rng=lambda: 0.0)
    late = RetryPolicy(rng=lambda: 0.99)
    exc = _throttled(2.0)
    assert early.throttle_wait(exc) == pytest.approx(2.0)
    assert 2.0 < late.throttle_wait(exc) <= 2.0 + 0.05 + 0.2
    assert RetryPolicy(jitter=False).throttle_wait(exc) == 2.0
    # Without a hint, the backoff (capped, full jitter).
    assert RetryPolicy(jitter=False, max_wait=10.0).throttle_wait(_throttled(None), 30) == 10.0


async def test_other_transient_errors_stop_at_the_deadline(
    fake: FakeTime, no_testing_mode: None
) -> None:
    fn, calls = _failing([_transient() for _ in range(5)])
    policy = _policy(fake, max_attempts=10)
    with pytest.raises(TransientApiError):
        await policy.call(fn, action="A", deadline=fake.now + 0.5)
    assert fake.waits == pytest.approx([0.2])  # 0.2 + 0.4 would end after the deadline
    assert calls[0] == 2


# --- an endpoint that never answers -----------------------------------------------------


def _silent(fake: FakeTime, timeouts: list[float | None]) -> Callable[[float | None], Any]:
    async def attempt(seconds: float | None) -> str:
        timeouts.append(seconds)
        assert seconds is not None
        fake.now += seconds  # the attempt waits its whole timeout for an answer
        raise TransportError("A: no answer from https://e (read timed out)")

    return attempt


async def test_no_answer_ends_within_the_no_answer_time(
    fake: FakeTime, no_testing_mode: None
) -> None:
    timeouts: list[float | None] = []
    policy = _policy(fake, max_attempts=8, max_total_seconds=300.0, max_wait=10.0)
    start = fake.now
    with pytest.raises(NoAnswerError) as info:
        await policy.call_timed(
            _silent(fake, timeouts), action="A", no_answer_seconds=60.0, endpoint="https://e"
        )
    # Was: 8 attempts of 30 s each and the waits between them, 255 s.
    assert fake.now - start == pytest.approx(60.0)
    assert timeouts == pytest.approx([20.0, 20.0, 19.4])
    error = info.value
    assert str(error).startswith("no answer from https://e in 60 s (A, 3 attempts): check")
    assert "\n" not in str(error)
    assert not error.transient
    assert isinstance(error.__cause__, TransportError)
    assert policy.stats.gave_up == 1


@settings(max_examples=150, deadline=None)
@given(
    no_answer=st.floats(0.05, 600.0),
    initial_wait=st.floats(0.0, 2.0),
    max_wait=st.floats(0.0, 30.0),
    max_attempts=st.integers(1, 20),
)
def test_no_answer_never_takes_longer_than_the_timeout(
    no_answer: float, initial_wait: float, max_wait: float, max_attempts: int
) -> None:
    fake = FakeTime()
    timeouts: list[float | None] = []
    policy = _policy(
        fake,
        max_attempts=max_attempts,
        max_total_seconds=1e9,
        initial_wait=initial_wait,
        max_wait=max_wait,
    )
    start = fake.now
    previous = retry.is_testing()
    retry.set_testing(False)
    try:
        with pytest.raises(TransportError):
            anyio.run(
                lambda: policy.call_timed(
                    _silent(fake, timeouts), action="A", no_answer_seconds=no_answer
                )
            )
    finally:
        retry.set_testing(previous)
    assert fake.now - start <= no_answer * (1 + 1e-9)
    assert 1 <= len(timeouts) <= max_attempts
    assert all(t is not None and t > 0 for t in timeouts)


async def test_an_answer_restarts_the_no_answer_time(fake: FakeTime, no_testing_mode: None) -> None:
    silent = _silent(fake, [])
    answers = iter(range(100))

    async def flaky(seconds: float | None) -> str:
        if next(answers) % 2:
            raise _transient()  # an answer: the endpoint is there
        return await silent(seconds)

    policy = _policy(fake, max_attempts=6, max_total_seconds=1e9)
    with pytest.raises(TransientApiError):
        await policy.call_timed(flaky, action="A", no_answer_seconds=3.0)
    # Six attempts, three of them silent for 1 s each: never 3 s without any answer.
    assert policy.stats.gave_up == 1


def test_attempt_timeouts() -> None:
    assert RetryPolicy.attempt_timeout(None, None) is None
    assert RetryPolicy.attempt_timeout(60.0, None) == 20.0
    assert RetryPolicy.attempt_timeout(60.0, 50.0) == 10.0
    assert RetryPolicy.attempt_timeout(60.0, 70.0) == 0.0
    assert not RetryPolicy.no_answer_spent(None, 1e9)
    assert not RetryPolicy.no_answer_spent(60.0, 54.0)
    assert RetryPolicy.no_answer_spent(60.0, 56.0)
    assert RetryPolicy.fits_deadline(10.0, 5.0, None)
    assert RetryPolicy.fits_deadline(10.0, 5.0, 15.0)
    assert not RetryPolicy.fits_deadline(10.0, 5.1, 15.0)
