"""Helpers of the journal contract tests: a clock, input rows, runs, and the way to take
an application to any state through the protocol's moves alone."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from provisioner.journal import (
    APP_MOVES,
    DeviceRow,
    JournalStore,
    RejectedRow,
    RunRecord,
)
from provisioner.journal.models import RUN_MOVES, RUN_TRANSITIONS

__all__ = [
    "MOVE_TARGETS",
    "FakeClock",
    "OpenStore",
    "app_path",
    "new_run",
    "perform",
    "perform_run",
    "rows",
    "run_path",
]


#: ``open_store(**kw)``: another handle on the test's journal (``pid=``, ``hostname=``...).
OpenStore = Callable[..., JournalStore]


class FakeClock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rows(n: int, prefix: str = "dev", first_line: int = 2) -> list[DeviceRow]:
    """``n`` input rows; every other one has a Nickname."""
    return [
        DeviceRow(first_line + i, f"{prefix}{i:05d}", f"nick{i:05d}" if i % 2 else None)
        for i in range(n)
    ]


def new_run(
    store: JournalStore,
    n: int = 6,
    chunk: int = 3,
    key: str = "k1",
    *,
    prefix: str = "dev",
    params: dict[str, object] | None = None,
) -> RunRecord:
    """A check-and-create run of ``n`` devices (lines 2...) in chunks of ``chunk``, and
    one row rejected (line 99, or after the devices)."""
    devices = rows(n, prefix)
    return store.plan_run(
        run_key=key,
        kind="check_create",
        product_key="a1PK",
        params=params if params is not None else {"out": "/tmp/x.age", "chunk_size": chunk},
        chunks=[devices[i : i + chunk] for i in range(0, n, chunk)],
        rejected=[RejectedRow(max(99, n + 2), "", None, "DeviceName is empty")],
    )


#: Every (move, target) a test can ask for; the moves with a result pick their target
#: by their arguments (see :func:`perform`).
MOVE_TARGETS: list[tuple[str, str]] = sorted(
    (name, target) for name, spec in APP_MOVES.items() for target in spec.targets
)


def perform(store: JournalStore, app_id: int, move: str, target: str) -> object:
    """Ask ``store`` for ``move`` on application ``app_id``, with arguments that aim at
    ``target``; whatever the method returns."""
    pending = [d.device_name for d in store.app_devices(app_id)]
    first = pending[:1]
    if move == "intend_check":
        return store.intend_check(app_id)
    if move == "record_apply_id":
        return store.record_apply_id(app_id, "1001")
    if move == "split":
        return store.split(app_id, detail="iot.device.DeviceCountExceeded")
    if move == "record_check_failed":
        return store.record_check_failed(app_id, dict.fromkeys(first, "refused"), detail="x")
    if move == "check_passed":
        return store.check_passed(app_id)
    if move == "intend_create":
        return store.intend_create(app_id)
    if move == "record_creating":
        return store.record_creating(app_id, detail="creation submitted")
    if move == "record_create_result":
        failed = first if target == "CREATE_FAILED" else []
        return store.record_create_result(app_id, failed, retry=False, reason="boom")
    if move == "mark_exported":
        return store.mark_exported(app_id, detail="exported")
    if move == "intend_register":
        return store.intend_register(app_id, detail="--lost resubmit")
    if move == "record_registered":
        return store.record_registered(app_id, "2002")
    if move == "unregister":
        return store.unregister(app_id, detail="iot.system.SystemBusy")
    if move == "mark_lost":
        return store.mark_lost(app_id, "ReadTimeout: no answer")
    if move == "abandon":
        return store.abandon(app_id)
    if move == "split_sizes":
        return store.split_sizes(app_id, [2, 1], detail="iot.device.DeviceCountExceeded")
    if move == "record_random_result":
        failed = {"zz-random": "no luck"} if target == "CREATE_FAILED" else {}
        return store.record_random_result(app_id, failed, retry=False, detail=target)
    raise AssertionError(f"no recipe for {move}")


def _shortest_paths(
    start: str, edges: Sequence[tuple[str, str, str]]
) -> dict[str, list[tuple[str, str]]]:
    """For each state reachable from ``start``: the shortest list of (move, target)."""
    paths: dict[str, list[tuple[str, str]]] = {start: []}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        for source, move, target in edges:
            if source == here and target not in paths:
                paths[target] = [*paths[here], (move, target)]
                queue.append(target)
    return paths


_APP_EDGES = sorted(
    (source, name, target)
    for name, spec in APP_MOVES.items()
    for source in spec.sources
    for target in spec.targets
)


def app_path(state: str) -> list[tuple[str, str]]:
    """The moves that take a new application of named devices to ``state``."""
    return _shortest_paths("PLANNED", _APP_EDGES)[state]


def run_path(status: str) -> list[str]:
    """The run moves that take a planned run to ``status``."""
    edges = sorted(
        (source, move, target)
        for source, targets in RUN_TRANSITIONS.items()
        for move, target in RUN_MOVES.items()
        if target in targets and source != target
    )
    return [move for move, _ in _shortest_paths("planned", edges)[status]]


def perform_run(store: JournalStore, run_id: str, move: str) -> None:
    """Ask ``store`` for the run ``move``, with the arguments it takes."""
    if move == "start_run":
        store.start_run(run_id)
    elif move == "fail_run":
        store.fail_run(run_id, f"stopped by {move}")
    elif move == "commit_run":
        store.commit_run(run_id, {"counts": {"created": 1}})
    elif move == "complete_run":
        store.complete_run(run_id, {"counts": {"created": 2}})
    else:
        raise AssertionError(f"no recipe for {move}")
