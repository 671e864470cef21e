"""provisioner.api.limits: paced sends never put more than the limit in any window.

A fake clock moves only when the limiter sleeps (or when a test says time passes), so
every schedule is exact and the tests take no real time.
"""

from __future__ import annotations

import bisect
from collections import defaultdict

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provisioner.api.limits import QPS_LIMITS, SlidingWindowLimiter, qps_for

WINDOW = 1.0
MARGIN = 0.05
SPAN = WINDOW + MARGIN
EPS = 1e-9


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        # Never a zero step: float rounding must not leave the clock where it was.
        self.now += max(seconds, EPS)
        await anyio.lowlevel.checkpoint()


def _limiter(
    fake: FakeTime, *, scale: float = 1.0, limits: dict[str, int] | None = None
) -> SlidingWindowLimiter:
    return SlidingWindowLimiter(
        "AKID",
        scale=scale,
        window=WINDOW,
        margin=MARGIN,
        limits=limits,
        clock=fake.clock,
        sleep=fake.sleep,
    )


def _max_in_any_window(times: list[float], window: float) -> int:
    """The most acquisitions in any half-open window (t - window, t] ending at one of them."""
    ordered = sorted(times)
    best = 0
    for i, t in enumerate(ordered):
        first = bisect.bisect_right(ordered, t - window + EPS)
        best = max(best, i + 1 - first)
    return best


def test_qps_for() -> None:
    assert qps_for("BatchCheckDeviceNames") == 10
    assert qps_for("QueryPageByApplyId", 2.0) == 100
    assert qps_for("BatchQueryDeviceDetail", 0.01) == 1  # never below 1
    assert qps_for("SomethingElse") == 50
    assert set(QPS_LIMITS) >= {"BatchCheckDeviceNames", "QueryPageByApplyId", "DeleteDevice"}


@settings(max_examples=60, deadline=None)
@given(
    qps=st.integers(min_value=1, max_value=20),
    gaps=st.lists(
        st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=0.5), st.floats(0.5, 3.0)),
        min_size=1,
        max_size=120,
    ),
)
def test_sequential_arrivals_never_exceed_the_limit(qps: int, gaps: list[float]) -> None:
    fake = FakeTime()
    limiter = _limiter(fake, limits={"Op": qps})
    times: list[float] = []
    arrivals: list[float] = []

    async def run() -> None:
        for gap in gaps:
            fake.now += gap
            arrivals.append(fake.now)
            await limiter.acquire("Op")
            times.append(fake.now)

    anyio.run(run)
    assert _max_in_any_window(times, WINDOW) <= qps
    assert _max_in_any_window(times, SPAN - 1e-6) <= qps
    # And no more waiting than needed: each send happens on arrival or one pacing
    # interval after the previous send, whichever is later.
    for i, t in enumerate(times):
        earliest = max(arrivals[i], times[i - 1] + SPAN / qps if i else arrivals[i])
        assert earliest - EPS <= t <= earliest + 1e-6


@settings(max_examples=30, deadline=None)
@given(
    qps=st.integers(min_value=1, max_value=15),
    tasks=st.integers(min_value=1, max_value=60),
    scale=st.sampled_from([0.25, 0.5, 1.0, 2.0]),
)
def test_concurrent_callers_never_exceed_the_scaled_limit(
    qps: int, tasks: int, scale: float
) -> None:
    fake = FakeTime()
    limiter = _limiter(fake, limits={"Op": qps, "Other": qps}, scale=scale)
    limit = max(1, int(qps * scale))
    assert limiter.limit("Op") == limit
    times: dict[str, list[float]] = defaultdict(list)

    async def one(op: str) -> None:
        await limiter.acquire(op)
        times[op].append(fake.now)

    async def run() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(tasks):
                tg.start_soon(one, "Op" if i % 2 else "Other")

    anyio.run(run)
    for op_times in times.values():
        assert _max_in_any_window(op_times, WINDOW) <= limit
    assert sum(len(v) for v in times.values()) == tasks


def test_scale_applies_to_the_documented_limits() -> None:
    fake = FakeTime()
    limiter = _limiter(fake, scale=0.5)
    assert limiter.limit("BatchCheckDeviceNames") == 5
    assert limiter.limit("QueryPageByApplyId") == 25
    times: list[float] = []

    async def run() -> None:
        for _ in range(12):
            await limiter.acquire("BatchCheckDeviceNames")
            times.append(fake.now)

    anyio.run(run)
    assert times == pytest.approx([k * SPAN / 5 for k in range(12)])
    assert _max_in_any_window(times, WINDOW) == 5


def test_operations_are_independent() -> None:
    fake = FakeTime()
    limiter = _limiter(fake)

    async def run() -> None:
        await limiter.acquire("BatchCheckDeviceNames")
        # A check was just sent; the export operation's pacing is untouched by it.
        await limiter.acquire("QueryPageByApplyId")
        assert fake.sleeps == 0
        assert fake.now == 0.0
        await limiter.acquire("BatchCheckDeviceNames")
        assert fake.now == pytest.approx(SPAN / 10)
        await limiter.acquire("QueryPageByApplyId")
        assert fake.now == pytest.approx(SPAN / 10)

    anyio.run(run)


def test_long_run_all_windows() -> None:
    fake = FakeTime()
    limiter = _limiter(fake)
    times: list[float] = []

    async def run() -> None:
        for i in range(2_000):
            if i % 97 == 0:
                fake.now += 0.3
            await limiter.acquire("BatchQueryDeviceDetail")  # 5 QPS
            times.append(fake.now)

    anyio.run(run)
    assert _max_in_any_window(times, WINDOW) == 5
    # The budget is used: 2,000 sends at 5 per 1.05 s take about 420 s, not much more.
    assert times[-1] < 2_000 / 5 * SPAN + 25


# --- a throttled answer holds the operation ---------------------------------------------


def test_hold_pauses_every_later_send_of_the_operation() -> None:
    fake = FakeTime()
    limiter = _limiter(fake)
    times: list[float] = []

    async def run() -> None:
        await limiter.acquire("QueryPageByApplyId")
        limiter.hold("QueryPageByApplyId", 0.7)  # the server said: 700 ms
        for _ in range(3):
            await limiter.acquire("QueryPageByApplyId")
            times.append(fake.now)
        # Another operation's window is another window.
        await limiter.acquire("QueryProduct")
        times.append(fake.now)

    anyio.run(run)
    # Held until 0.7 s, then paced as before (one every SPAN / 50 s).
    assert times[:3] == pytest.approx([0.7, 0.7 + SPAN / 50, 0.7 + 2 * SPAN / 50])
    assert times[3] == pytest.approx(times[2])


def test_a_shorter_hold_does_not_cut_a_longer_one() -> None:
    fake = FakeTime()
    limiter = _limiter(fake)

    async def run() -> None:
        limiter.hold("Op", 2.0)
        limiter.hold("Op", 0.5)
        await limiter.acquire("Op")

    anyio.run(run)
    assert fake.now == pytest.approx(2.0)


@settings(max_examples=60, deadline=None)
@given(
    qps=st.integers(min_value=1, max_value=20),
    tasks=st.integers(min_value=2, max_value=40),
    holds=st.lists(
        st.tuples(st.integers(min_value=0, max_value=39), st.floats(0.0, 2.0)), max_size=5
    ),
)
def test_no_send_inside_a_hold(qps: int, tasks: int, holds: list[tuple[int, float]]) -> None:
    """Holds arrive while callers are queued or sleeping; none of them sends inside one."""
    fake = FakeTime()
    limiter = _limiter(fake, limits={"Op": qps})
    sends: list[float] = []
    windows: list[tuple[float, float]] = []
    hold_after = dict(holds)

    async def one(i: int) -> None:
        await limiter.acquire("Op")
        sends.append(fake.now)
        if i in hold_after:  # this call came back throttled
            windows.append((fake.now, fake.now + hold_after[i]))
            limiter.hold("Op", hold_after[i])

    async def run() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(tasks):
                tg.start_soon(one, i)

    anyio.run(run)
    assert len(sends) == tasks
    for start, end in windows:
        assert not [t for t in sends if start + EPS < t < end - EPS], (start, end, sends)
    assert _max_in_any_window(sends, WINDOW) <= qps


def test_a_hold_that_comes_in_during_a_wait_is_honoured() -> None:
    fake = FakeTime()
    answers = ["throttled"]

    async def sleep(seconds: float) -> None:
        # Halfway through this wait, the throttled answer of an earlier send comes in.
        fake.now += seconds / 2
        if answers:
            answers.pop()
            limiter.hold("Op", 1.0)
        fake.now += seconds / 2

    limiter = SlidingWindowLimiter(
        "AKID", window=WINDOW, margin=MARGIN, limits={"Op": 2}, clock=fake.clock, sleep=sleep
    )
    times: list[float] = []

    async def run() -> None:
        for _ in range(2):
            await limiter.acquire("Op")
            times.append(fake.now)

    anyio.run(run)
    # Paced for SPAN / 2, held at SPAN / 4 for 1 s: the second send waits for the hold.
    assert times == pytest.approx([0.0, SPAN / 4 + 1.0])
