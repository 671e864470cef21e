"""Planning a run, without I/O: chunks of names, and how long the API makes it take.

The estimate follows the pipeline's shape: stages overlap across applications, so the
run takes as long as its slowest budget. With full chunks that is QueryPageByApplyId
(``ceil(devices / 50)`` pages at 50 QPS, 2,500 devices a second, after the first
application is created: one check call, the server's check, one create call, the
server's creation); with small chunks it can be BatchCheckDeviceNames (10 QPS, one
call per chunk) or the status polls. Every stage is costed and the slowest named.
The server's check and creation times are inputs: the reference only says "some
minutes" for creation, so a dry run states its assumption.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from provisioner.api.limits import qps_for

__all__ = [
    "PAGE_SIZE",
    "Estimate",
    "chunk_sizes",
    "estimate",
    "format_plan",
    "split_chunks",
]

#: QueryPageByApplyId's largest page, which the export always asks for.
PAGE_SIZE = 50

T = TypeVar("T")

_CHECK = "BatchCheckDeviceNames"
_STATUS = "QueryBatchRegisterDeviceStatus"
_CREATE = "BatchRegisterDeviceWithApplyId"
_PAGE = "QueryPageByApplyId"


def chunk_sizes(count: int, chunk_size: int) -> list[int]:
    """Sizes of the chunks of ``count`` names, each at most ``chunk_size``.

    The names are spread evenly (10,001 names in chunks of 10,000 make 5,001 + 5,000,
    not 10,000 + 1): equal chunks finish their stages together and no tiny chunk pays
    a whole round of check and create for a handful of devices.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk size must be at least 1, got {chunk_size}")
    if count <= 0:
        return []
    chunks = math.ceil(count / chunk_size)
    base, extra = divmod(count, chunks)
    return [base + 1 if i < extra else base for i in range(chunks)]


def split_chunks(items: Sequence[T], chunk_size: int) -> list[Sequence[T]]:
    """``items`` cut into consecutive chunks of the sizes :func:`chunk_sizes` gives."""
    out: list[Sequence[T]] = []
    start = 0
    for size in chunk_sizes(len(items), chunk_size):
        out.append(items[start : start + size])
        start += size
    return out


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a run of ``devices`` names costs in calls and seconds.

    ``calls`` and ``seconds`` are per operation (seconds: calls at the operation's
    budget, if it were the only thing running); ``first_created_seconds`` the time to
    the first created application; ``total_seconds`` the estimate of the whole run;
    ``bottleneck`` the operation whose budget takes longest to spend.
    """

    devices: int
    chunks: Sequence[int]
    calls: Mapping[str, int]
    seconds: Mapping[str, float]
    qps: Mapping[str, int]
    first_created_seconds: float
    total_seconds: float
    check_seconds: float
    create_seconds: float
    bottleneck: str = _PAGE


def estimate(
    devices: int,
    chunk_size: int,
    *,
    qps_scale: float = 1.0,
    check_seconds: float = 1.0,
    create_seconds: float = 2.0,
    page_size: int = PAGE_SIZE,
) -> Estimate:
    """The calls and time of a run of ``devices`` names in chunks of ``chunk_size``.

    ``check_seconds`` / ``create_seconds`` are the server's own time per application
    (assumptions); ``qps_scale`` multiplies the QPS table as the client's limiter does.
    """
    sizes = chunk_sizes(devices, chunk_size)
    pages = sum(math.ceil(size / page_size) for size in sizes)
    qps = {op: qps_for(op, qps_scale) for op in (_CHECK, _STATUS, _CREATE, _PAGE)}
    calls = {
        _CHECK: len(sizes),
        # At least one status answer per stage and application; polling adds a few more.
        _STATUS: 2 * len(sizes),
        _CREATE: len(sizes),
        _PAGE: pages,
    }
    seconds = {op: calls[op] / qps[op] for op in calls}
    bottleneck = max(seconds, key=lambda op: (seconds[op], op == _PAGE))
    if not sizes:
        first = 0.0
        total = 0.0
    else:
        first = 1 / qps[_CHECK] + check_seconds + 1 / qps[_CREATE] + create_seconds
        # Stages overlap across applications: pages start once the first application
        # is created; every other stage's calls (all checks, all polls, all creation
        # submissions) must also fit, plus the server's time for the last application.
        total = max(
            first + seconds[_PAGE],
            *(seconds[op] + check_seconds + create_seconds for op in (_CHECK, _STATUS, _CREATE)),
        )
    return Estimate(
        devices=devices,
        chunks=sizes,
        calls=calls,
        seconds=seconds,
        qps=qps,
        first_created_seconds=first,
        total_seconds=total,
        check_seconds=check_seconds,
        create_seconds=create_seconds,
        bottleneck=bottleneck,
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def format_plan(plan: Estimate, *, input_rows: int, rejected: int, product_key: str) -> list[str]:
    """The lines a dry run prints: chunks, calls per operation, the estimate."""
    lines = [
        f"input rows: {input_rows}, valid: {plan.devices}, rejected: {rejected}",
        f"product: {product_key}",
        f"chunks: {len(plan.chunks)}"
        + (f" ({', '.join(str(s) for s in plan.chunks[:10])}" if plan.chunks else "")
        + (", ..." if len(plan.chunks) > 10 else "")
        + (")" if plan.chunks else ""),
    ]
    for op, calls in plan.calls.items():
        lines.append(f"  {op}: {calls} calls at {plan.qps[op]} QPS = {_duration(plan.seconds[op])}")
    lines.append(
        f"first application created after ~{_duration(plan.first_created_seconds)} "
        f"(assuming the server checks in {plan.check_seconds:g} s and creates in "
        f"{plan.create_seconds:g} s)"
    )
    bound = plan.bottleneck
    # Pages: the budget's own rate (50 devices a call); other stages: their calls' share.
    per_call = PAGE_SIZE if bound == _PAGE else plan.devices / max(plan.calls[bound], 1)
    rate = plan.qps[bound] * per_call
    lines.append(
        f"estimated time: {_duration(plan.total_seconds)} "
        f"(bound by {bound}: {plan.calls[bound]} calls at {plan.qps[bound]} QPS, "
        f"{rate:.0f} devices/s)"
    )
    return lines
