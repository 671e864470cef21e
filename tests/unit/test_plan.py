"""Planning: chunking and the time estimate from the QPS table."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.pipeline.plan import chunk_sizes, estimate, format_plan, split_chunks


def test_chunks_are_even_and_bounded() -> None:
    assert chunk_sizes(0, 10) == []
    assert chunk_sizes(10, 10) == [10]
    assert chunk_sizes(10_001, 10_000) == [5_001, 5_000]
    assert chunk_sizes(25_000, 10_000) == [8_334, 8_333, 8_333]
    assert chunk_sizes(7, 3) == [3, 2, 2]


def test_chunk_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        chunk_sizes(5, 0)


@given(st.integers(0, 50_000), st.integers(1, 12_000))
def test_chunking_properties(count: int, size: int) -> None:
    sizes = chunk_sizes(count, size)
    assert sum(sizes) == count
    assert all(1 <= s <= size for s in sizes)
    assert len(sizes) == math.ceil(count / size)
    if sizes:
        assert max(sizes) - min(sizes) <= 1


def test_split_keeps_order() -> None:
    items = list(range(11))
    parts = split_chunks(items, 4)
    assert [list(p) for p in parts] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]


def test_estimate_is_bound_by_pages() -> None:
    plan = estimate(20_000, 10_000, check_seconds=1.0, create_seconds=2.0)
    assert plan.chunks == [10_000, 10_000]
    assert plan.calls["QueryPageByApplyId"] == 400
    assert plan.calls["BatchCheckDeviceNames"] == 2
    assert plan.seconds["QueryPageByApplyId"] == pytest.approx(8.0)
    assert plan.first_created_seconds == pytest.approx(0.1 + 1.0 + 0.002 + 2.0)
    assert plan.total_seconds == pytest.approx(8.0 + plan.first_created_seconds)


def test_estimate_pages_count_per_chunk() -> None:
    # 3 chunks of 34 names: 3 pages, not ceil(102 / 50) = 3 either way; 2 chunks of 51: 4.
    assert estimate(102, 51).calls["QueryPageByApplyId"] == 4


def test_estimate_scales_with_qps() -> None:
    plan = estimate(20_000, 10_000, qps_scale=10)
    assert plan.qps["QueryPageByApplyId"] == 500
    assert plan.seconds["QueryPageByApplyId"] == pytest.approx(0.8)


def test_many_tiny_chunks_are_bound_by_check_submissions() -> None:
    plan = estimate(10_000, 1, check_seconds=0, create_seconds=0)
    assert plan.total_seconds == pytest.approx(10_000 / 10)


def test_empty_estimate() -> None:
    plan = estimate(0, 10)
    assert plan.total_seconds == 0
    assert plan.chunks == []


def test_format_plan_mentions_everything() -> None:
    lines = format_plan(
        estimate(25_000, 10_000), input_rows=25_010, rejected=10, product_key="a1PK"
    )
    text = "\n".join(lines)
    assert "valid: 25000" in text
    assert "rejected: 10" in text
    assert "chunks: 3 (8334, 8333, 8333)" in text
    assert "QueryPageByApplyId: 501 calls at 50 QPS" in text
    assert "2500 devices/s" in text
    assert "estimated time" in text


def test_small_chunks_name_the_check_as_the_bottleneck() -> None:
    # 2,000 chunks of 10: 200 s of BatchCheckDeviceNames at 10 QPS against 40 s of pages.
    plan = estimate(20_000, 10)
    assert plan.bottleneck == "BatchCheckDeviceNames"
    text = "\n".join(format_plan(plan, input_rows=20_000, rejected=0, product_key="a1PK"))
    assert "bound by BatchCheckDeviceNames: 2000 calls at 10 QPS" in text
    assert "bound by QueryPageByApplyId" not in text


@given(st.integers(1, 300_000), st.integers(1, 10_000), st.floats(0.1, 20))
def test_estimate_names_the_slowest_stage_and_covers_every_stage(
    devices: int, chunk: int, scale: float
) -> None:
    plan = estimate(devices, chunk, qps_scale=scale)
    slowest = max(plan.seconds.values())
    assert plan.seconds[plan.bottleneck] == slowest
    # No stage's own calls fit in less time than the whole run is said to take.
    assert all(plan.total_seconds >= s for s in plan.seconds.values())
    assert plan.total_seconds >= plan.first_created_seconds + plan.seconds["QueryPageByApplyId"]
