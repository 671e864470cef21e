"""provisioner.api.retry: what is retried, how long it waits, when it stops."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import pytest
from structlog.testing import capture_logs

from provisioner.api import retry
from provisioner.api.retry import RetryPolicy
from provisioner.errors import (
    AuthenticationError,
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


async def test_retry_after_beyond_the_budget_gives_up_at_once(
    fake: FakeTime, no_testing_mode: None
) -> None:
    throttled = ThrottledError("A", "Throttling", "m", retry_after=30.0)
    fn, calls = _failing([throttled])
    policy = _policy(fake, max_total_seconds=10.0)
    with pytest.raises(ThrottledError) as info:
        await policy.call(fn, action="A")
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
            "wait_s": 0.4,
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
