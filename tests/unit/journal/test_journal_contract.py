"""The journal contract: what the pipeline may ask of any :class:`JournalStore`.

Written against the protocol only (every store comes from ``open_journal``), so each
backend of ``conftest.BACKENDS`` must pass it. The machines' tables are tested move by
move in ``test_journal_transitions.py``, leases in ``test_journal_leases.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from journal_kit import FakeClock, OpenStore, new_run, rows

from provisioner.errors import JournalError
from provisioner.journal import Claim, DeviceRow, ImportResult, JournalStore, RunRecord
from provisioner.journal.protocol import Scope

ENDPOINT = "https://iot.cn-shanghai.aliyuncs.com"


def to_state(store: JournalStore, app_id: int, *moves: str) -> None:
    """Plain moves (and ApplyIds) in order, as the pipeline would make them."""
    for move in moves:
        if move == "record_apply_id":
            store.record_apply_id(app_id, "1001")
        elif move == "record_registered":
            store.record_registered(app_id, "2002")
        else:
            getattr(store, move)(app_id)


CHECKED = ("intend_check", "record_apply_id", "check_passed")
CREATING = (*CHECKED, "intend_create", "record_creating")


def finish(store: JournalStore, run_id: str) -> None:
    store.start_run(run_id)
    store.commit_run(run_id, {"counts": {}})
    store.complete_run(run_id, None)


# --- the store -------------------------------------------------------------------------


def test_store_names_its_location_and_schema(store: JournalStore) -> None:
    assert store.location
    assert store.schema_version() >= 1


def test_store_is_a_context_manager(open_store: OpenStore) -> None:
    with open_store() as store:
        run = new_run(store)
    with open_store() as again:
        assert again.get_run(run.run_id) == run


# --- runs ------------------------------------------------------------------------------


def test_plan_run_stores_devices_chunks_and_rejects(store: JournalStore) -> None:
    run = new_run(store, n=7, chunk=3)
    assert run.status == "planned"
    assert run.params["chunk_size"] == 3
    assert (run.kind, run.product_key, run.report, run.error, run.lease) == (
        "check_create",
        "a1PK",
        None,
        None,
        None,
    )
    assert store.get_run(run.run_id) == run
    assert store.find_run("k1") == run
    apps = store.applications(run.run_id)
    assert [(a.chunk_no, a.size, a.state, a.attempt, a.parent_id) for a in apps] == [
        (0, 3, "PLANNED", 0, None),
        (1, 3, "PLANNED", 0, None),
        (2, 1, "PLANNED", 0, None),
    ]
    assert store.device_counts(run.run_id) == {"pending": 7, "rejected": 1}
    assert [(d.line, d.device_name, d.nickname) for d in store.app_devices(apps[0].app_id)] == [
        (2, "dev00000", None),
        (3, "dev00001", "nick00001"),
        (4, "dev00002", None),
    ]
    (refused,) = store.devices(run.run_id, ("rejected",))
    assert (refused.line, refused.reason, refused.app_id) == (99, "DeviceName is empty", None)
    history = [(t.entity, t.from_state, t.to_state) for t in store.transitions(run.run_id)]
    assert history == [
        ("run", None, "planned"),
        *[(f"app:{a.app_id}", None, "PLANNED") for a in apps],
    ]


def test_plan_run_is_idempotent_by_run_key(store: JournalStore) -> None:
    first = new_run(store, n=6, chunk=3)
    again = new_run(store, n=2, chunk=1)  # same key, other plan: the first one stands
    assert again == first
    assert store.list_runs() == [first]
    assert len(store.applications(first.run_id)) == 2
    assert store.device_counts(first.run_id) == {"pending": 6, "rejected": 1}
    assert len(store.transitions(first.run_id)) == 3


def test_plan_run_of_random_sizes_and_of_single_devices(store: JournalStore) -> None:
    random = store.plan_run(run_key="r", kind="random", product_key="a1PK", params={}, sizes=[3, 2])
    assert [(a.chunk_no, a.size, a.kind) for a in store.applications(random.run_id)] == [
        (0, 3, "random"),
        (1, 2, "random"),
    ]
    assert store.devices(random.run_id) == []
    imported = store.plan_run(
        run_key="i", kind="import", product_key="a1PK", params={}, devices=rows(3)
    )
    assert store.applications(imported.run_id) == []
    assert [(d.state, d.app_id) for d in store.devices(imported.run_id)] == [("pending", None)] * 3


def test_find_run_of_an_unknown_key_is_none(store: JournalStore) -> None:
    new_run(store)
    assert store.find_run("other") is None


def test_get_run_by_prefix_unknown_and_empty(store: JournalStore) -> None:
    run_id = new_run(store).run_id
    assert store.get_run(run_id[:5]).run_id == run_id
    assert store.get_run(run_id).run_id == run_id
    with pytest.raises(JournalError, match="no run"):
        store.get_run("ffffffffffff" if not run_id.startswith("f") else "000000000000")
    with pytest.raises(JournalError, match="run id is needed"):
        store.get_run("")


def test_an_ambiguous_prefix_is_an_error(store: JournalStore) -> None:
    # Seventeen runs: two share their first hex digit, whatever the ids drawn.
    ids = [new_run(store, n=1, chunk=1, key=f"k{i}").run_id for i in range(17)]
    shared = next(c for c in "0123456789abcdef" if sum(i[0] == c for i in ids) > 1)
    with pytest.raises(JournalError, match="ambiguous"):
        store.get_run(shared)
    for run_id in ids:
        assert store.get_run(run_id).run_id == run_id  # a whole id is never ambiguous


def test_list_runs_oldest_first(store: JournalStore, clock: FakeClock) -> None:
    first = new_run(store, key="a")
    clock.now += 10
    second = new_run(store, key="b")
    assert [r.run_id for r in store.list_runs()] == [first.run_id, second.run_id]
    assert second.created_at - first.created_at == 10


def test_update_params(store: JournalStore, clock: FakeClock) -> None:
    run = new_run(store)
    clock.now += 3
    store.update_params(run.run_id, {"out": "/tmp/y.age", "chunk_size": 3})
    again = store.get_run(run.run_id)
    assert again.params == {"out": "/tmp/y.age", "chunk_size": 3}
    assert again.updated_at == run.updated_at + 3


def test_run_status_report_and_error(store: JournalStore) -> None:
    run_id = new_run(store).run_id
    store.start_run(run_id)
    store.fail_run(run_id, "boom")
    failed = store.get_run(run_id)
    assert (failed.status, failed.error) == ("failed", "boom")
    store.start_run(run_id)
    assert store.get_run(run_id).error is None
    store.commit_run(run_id, {"counts": {"created": 6}})
    committing = store.get_run(run_id)
    assert (committing.status, committing.report) == ("committing", {"counts": {"created": 6}})
    store.complete_run(run_id, None)  # None keeps the report kept at commit
    done = store.get_run(run_id)
    assert (done.status, done.report) == ("completed", {"counts": {"created": 6}})
    store.start_run(run_id)  # exported again
    store.commit_run(run_id, {"counts": {"created": 6}, "out": "/b"})
    store.complete_run(run_id, {"counts": {"created": 6}, "out": "/c"})
    assert store.get_run(run_id).report == {"counts": {"created": 6}, "out": "/c"}
    logged = [(t.from_state, t.to_state, t.detail) for t in store.transitions(run_id, "run")]
    assert logged == [
        (None, "planned", None),
        ("planned", "running", None),
        ("running", "failed", "boom"),
        ("failed", "running", None),
        ("running", "committing", None),
        ("committing", "completed", None),
        ("completed", "running", None),
        ("running", "committing", None),
        ("committing", "completed", None),
    ]


def test_a_run_left_running_is_started_again_without_a_history_line(
    store: JournalStore,
) -> None:
    run_id = new_run(store).run_id
    store.start_run(run_id)
    store.start_run(run_id)  # the holder died; the next process takes it as it is
    assert store.get_run(run_id).status == "running"
    assert [t.to_state for t in store.transitions(run_id, "run")] == ["planned", "running"]


def test_a_forbidden_run_move_names_itself(store: JournalStore) -> None:
    run_id = new_run(store).run_id
    with pytest.raises(JournalError, match=r"complete_run \(planned -> completed\)"):
        store.complete_run(run_id, {"counts": {}})
    assert store.get_run(run_id).status == "planned"
    with pytest.raises(JournalError, match="no run"):
        store.start_run("nope")


# --- applications: check and create ----------------------------------------------------


def test_happy_path_with_intents(store: JournalStore, clock: FakeClock) -> None:
    run_id = new_run(store).run_id
    app = store.applications(run_id)[0]
    store.intend_check(app.app_id)
    clock.now += 1
    store.record_apply_id(app.app_id, "1001")
    assert store.application(app.app_id).apply_id == "1001"
    store.check_passed(app.app_id)
    store.intend_create(app.app_id)
    store.record_creating(app.app_id, detail="creation submitted")
    assert store.record_create_result(app.app_id, (), retry=True, reason="") is None
    store.mark_exported(app.app_id, detail="exported")
    done = store.application(app.app_id)
    assert (done.state, done.apply_id, done.updated_at) == ("DONE", "1001", clock.now)
    assert {d.state for d in store.app_devices(app.app_id, None)} == {"created"}
    path = [
        (t.from_state, t.to_state, t.detail) for t in store.transitions(run_id, f"app:{app.app_id}")
    ]
    assert path == [
        (None, "PLANNED", None),
        ("PLANNED", "INTENT_CHECK", None),
        ("INTENT_CHECK", "CHECK", "ApplyId 1001"),
        ("CHECK", "CHECK_SUCCESS", None),
        ("CHECK_SUCCESS", "INTENT_CREATE", None),
        ("INTENT_CREATE", "CREATE", "creation submitted"),
        ("CREATE", "CREATE_SUCCESS", None),
        ("CREATE_SUCCESS", "DONE", "exported"),
    ]


def test_exported_again_stays_done_without_a_history_line(store: JournalStore) -> None:
    run_id = new_run(store).run_id
    app_id = store.applications(run_id)[0].app_id
    to_state(store, app_id, *CREATING)
    store.record_create_result(app_id, (), retry=True, reason="")
    store.mark_exported(app_id, detail="exported")
    before = store.transitions(run_id)
    store.mark_exported(app_id, detail="exported")
    assert store.application(app_id).state == "DONE"
    assert store.transitions(run_id) == before


def test_illegal_transition_is_refused(store: JournalStore) -> None:
    run_id = new_run(store).run_id
    app = store.applications(run_id)[0]
    with pytest.raises(JournalError, match=r"record_creating \(PLANNED -> CREATE\).*not allowed"):
        store.record_creating(app.app_id)
    assert store.application(app.app_id).state == "PLANNED"


def test_check_failed_rejects_and_moves_the_rest(store: JournalStore) -> None:
    run_id = new_run(store, n=6, chunk=6).run_id
    app = store.applications(run_id)[0]
    to_state(store, app.app_id, "intend_check", "record_apply_id")
    child = store.record_check_failed(
        app.app_id, {"dev00001": "already exists", "nobody": "not ours"}, detail="CHECK_FAILED"
    )
    assert child is not None
    assert (child.size, child.parent_id, child.state, child.attempt) == (
        5,
        app.app_id,
        "PLANNED",
        0,
    )
    assert child == store.application(child.app_id)
    assert store.application(app.app_id).state == "CHECK_FAILED"
    rejected = store.devices(run_id, ("rejected",))
    assert ("dev00001", "already exists", "check") in [
        (d.device_name, d.reason, d.cause) for d in rejected
    ]
    assert len(store.app_devices(child.app_id)) == 5
    assert store.app_devices(app.app_id) == []
    logged = store.transitions(run_id, f"app:{child.app_id}")
    assert [(t.from_state, t.to_state, t.detail) for t in logged] == [
        (None, "PLANNED", f"from application {app.app_id}")
    ]


def test_check_failed_adopts_when_asked(store: JournalStore) -> None:
    run_id = new_run(store, n=3, chunk=3).run_id
    app = store.applications(run_id)[0]
    to_state(store, app.app_id, "intend_check", "record_apply_id")
    names = {d.device_name: "exists" for d in store.app_devices(app.app_id)}
    assert store.record_check_failed(app.app_id, names, adopt=names.keys()) is None
    assert store.device_counts(run_id) == {"adopted": 3, "rejected": 1}
    assert {(d.reason, d.cause) for d in store.devices(run_id, ("adopted",))} == {
        ("exists", "check")
    }


def test_check_refused_outright_from_the_intent(store: JournalStore) -> None:
    run_id = new_run(store, n=2, chunk=2).run_id
    app_id = store.applications(run_id)[0].app_id
    store.intend_check(app_id)
    both = {"dev00000": "malformed", "dev00001": "malformed"}
    assert store.record_check_failed(app_id, both) is None
    assert store.device_counts(run_id) == {"rejected": 3}


@pytest.mark.parametrize(
    ("n", "parts", "sizes"), [(5, 2, [3, 2]), (7, 3, [3, 3, 1]), (2, 2, [1, 1])]
)
def test_split_shares_the_names(store: JournalStore, n: int, parts: int, sizes: list[int]) -> None:
    run_id = new_run(store, n=n, chunk=n).run_id
    app = store.applications(run_id)[0]
    store.intend_check(app.app_id)
    children = store.split(app.app_id, parts, detail="iot.device.DeviceCountExceeded")
    assert [c.size for c in children] == sizes
    assert all(c == store.application(c.app_id) for c in children)
    assert store.application(app.app_id).state == "SPLIT"
    names = [d.device_name for c in children for d in store.app_devices(c.app_id)]
    assert names == [f"dev{i:05d}" for i in range(n)]
    assert store.app_devices(app.app_id) == []
    last = store.transitions(run_id, f"app:{app.app_id}")[-1]
    assert (last.to_state, last.detail) == ("SPLIT", "iot.device.DeviceCountExceeded")


def test_create_failed_is_retried_once_then_failed(store: JournalStore) -> None:
    run_id = new_run(store, n=4, chunk=4).run_id
    app = store.applications(run_id)[0]
    to_state(store, app.app_id, *CHECKED, "intend_create")
    retry = store.record_create_result(
        app.app_id, {"dev00000", "dev00003", "nobody"}, retry=True, reason="boom"
    )
    assert retry is not None
    assert (retry.attempt, retry.size, retry.parent_id) == (1, 2, app.app_id)
    assert store.application(app.app_id).state == "CREATE_FAILED"
    assert store.device_counts(run_id)["created"] == 2
    to_state(store, retry.app_id, *CREATING)
    again = store.record_create_result(retry.app_id, {"dev00003"}, retry=False, reason="boom")
    assert again is None
    assert store.device_counts(run_id) == {"created": 3, "failed": 1, "rejected": 1}
    failed = store.devices(run_id, ("failed",))
    assert [(d.device_name, d.reason) for d in failed] == [("dev00003", "boom")]


def test_failed_transaction_changes_nothing(store: JournalStore) -> None:
    run_id = new_run(store, n=3, chunk=3).run_id
    app = store.applications(run_id)[0]
    before = (store.devices(run_id), store.transitions(run_id))
    # CHECK_FAILED is not reachable from PLANNED: nothing of the batch may be written.
    with pytest.raises(JournalError):
        store.record_check_failed(app.app_id, {"dev00000": "x"})
    assert (store.devices(run_id), store.transitions(run_id)) == before
    assert len(store.applications(run_id)) == 1


# --- applications: random names ----------------------------------------------------------


def random_run(store: JournalStore, sizes: list[int], key: str = "r") -> RunRecord:
    return store.plan_run(run_key=key, kind="random", product_key="a1PK", params={}, sizes=sizes)


def test_random_application_machine_and_names(store: JournalStore) -> None:
    run = random_run(store, [3, 2])
    first, _ = store.applications(run.run_id)
    store.intend_register(first.app_id)
    store.record_registered(first.app_id, "777")
    assert store.application(first.app_id).apply_id == "777"
    last = store.transitions(run.run_id, f"app:{first.app_id}")[-1]
    assert (last.from_state, last.to_state, last.detail) == (
        "INTENT_REGISTER",
        "CREATE",
        "ApplyId 777",
    )
    child = store.record_random_result(first.app_id, {"zzz": "failed"}, retry=True)
    assert child is not None
    assert (child.size, child.attempt, child.parent_id, child.state) == (
        1,
        1,
        first.app_id,
        "PLANNED",
    )
    assert store.application(first.app_id).state == "CREATE_FAILED"
    assert store.random_expected(store.application(first.app_id)) == 2
    store.record_random_names(first.app_id, ["b", "a"])
    store.record_random_names(first.app_id, ["a", "b"])  # a re-export: nothing twice
    devices = store.devices(run.run_id)
    assert [(d.device_name, d.state, d.app_id) for d in devices] == [
        ("a", "created", first.app_id),
        ("b", "created", first.app_id),
    ]


def test_random_failures_without_retry_are_journaled(store: JournalStore) -> None:
    run = random_run(store, [4])
    app_id = store.applications(run.run_id)[0].app_id
    to_state(store, app_id, "intend_register", "record_registered")
    failed = {"y": "quota", "x": "busy"}
    assert store.record_random_result(app_id, failed, retry=False, detail="CREATE_FAILED") is None
    devices = store.devices(run.run_id)
    assert [(d.device_name, d.state, d.reason) for d in devices] == [
        ("x", "failed", "busy"),
        ("y", "failed", "quota"),
    ]
    assert store.random_expected(store.application(app_id)) == 2
    store.record_random_names(app_id, ["n1", "n2"])
    lines = [d.line for d in store.devices(run.run_id)]
    assert len(set(lines)) == 4  # server-named devices never share a line
    assert store.device_counts(run.run_id) == {"created": 2, "failed": 2}


def test_random_success_expects_the_whole_size(store: JournalStore) -> None:
    run = random_run(store, [5])
    app_id = store.applications(run.run_id)[0].app_id
    to_state(store, app_id, "intend_register", "record_registered")
    assert store.record_random_result(app_id, {}, retry=True, detail="CREATE_SUCCESS") is None
    assert store.application(app_id).state == "CREATE_SUCCESS"
    assert store.random_expected(store.application(app_id)) == 5


def test_a_lost_answer_waits_for_the_operator(store: JournalStore) -> None:
    run = random_run(store, [2, 2])
    lost, abandoned = store.applications(run.run_id)
    for app in (lost, abandoned):
        store.intend_register(app.app_id)
        store.mark_lost(app.app_id, "ReadTimeout: " + "x" * 500)
    with pytest.raises(JournalError, match="record_registered"):
        store.record_registered(lost.app_id, "1")
    store.intend_register(lost.app_id, detail="--lost resubmit")
    store.abandon(abandoned.app_id)
    assert store.application(lost.app_id).state == "INTENT_REGISTER"
    assert store.application(abandoned.app_id).state == "ABANDONED"
    history = [
        (t.from_state, t.to_state, t.detail)
        for t in store.transitions(run.run_id, f"app:{abandoned.app_id}")
    ]
    assert history[-2:] == [
        ("INTENT_REGISTER", "LOST", ("ReadTimeout: " + "x" * 500)[:300]),
        ("LOST", "ABANDONED", "--lost abandon"),
    ]
    last = store.transitions(run.run_id, f"app:{lost.app_id}")[-1]
    assert (last.from_state, last.detail) == ("LOST", "--lost resubmit")


def test_a_refused_registration_goes_back_to_planned(store: JournalStore) -> None:
    run = random_run(store, [2])
    app_id = store.applications(run.run_id)[0].app_id
    store.intend_register(app_id)
    store.unregister(app_id, detail="iot.system.SystemBusy")
    assert store.application(app_id).state == "PLANNED"
    last = store.transitions(run.run_id, f"app:{app_id}")[-1]
    assert (last.from_state, last.to_state, last.detail) == (
        "INTENT_REGISTER",
        "PLANNED",
        "iot.system.SystemBusy",
    )


def test_split_sizes_replaces_the_application(store: JournalStore) -> None:
    run = random_run(store, [5])
    app = store.applications(run.run_id)[0]
    store.intend_register(app.app_id)
    children = store.split_sizes(app.app_id, [3, 0, 2], detail="iot.device.DeviceCountExceeded")
    assert [(c.size, c.parent_id, c.chunk_no) for c in children] == [
        (3, app.app_id, 0),
        (2, app.app_id, 0),
    ]
    assert all(c == store.application(c.app_id) for c in children)
    assert store.application(app.app_id).state == "SPLIT"


def test_record_random_names_of_an_unknown_application(store: JournalStore) -> None:
    with pytest.raises(JournalError, match="no application"):
        store.record_random_names(4242, ["a"])


# --- devices and imports -----------------------------------------------------------------


def import_run(store: JournalStore, n: int = 4, key: str = "i") -> RunRecord:
    return store.plan_run(
        run_key=key, kind="import", product_key="a1PK", params={}, devices=rows(n)
    )


def test_device_reads(store: JournalStore) -> None:
    run_id = new_run(store, n=4, chunk=2).run_id
    first, second = store.applications(run_id)
    to_state(store, first.app_id, *CREATING)
    store.record_create_result(first.app_id, {"dev00001"}, retry=False, reason="boom")
    assert store.app_devices(first.app_id) == []  # by default the pending ones
    assert [d.state for d in store.app_devices(first.app_id, None)] == ["created", "failed"]
    assert [d.device_name for d in store.app_devices(first.app_id, ("failed",))] == ["dev00001"]
    assert [d.device_name for d in store.app_devices(second.app_id)] == ["dev00002", "dev00003"]
    assert [d.line for d in store.devices(run_id)] == [2, 3, 4, 5, 99]
    assert [d.device_name for d in store.devices(run_id, ("created", "failed"))] == [
        "dev00000",
        "dev00001",
    ]
    assert store.device_counts(run_id) == {"created": 1, "failed": 1, "pending": 2, "rejected": 1}


def test_import_devices_intents_results_and_reopen(store: JournalStore) -> None:
    run = import_run(store)
    lines = [d.line for d in store.devices(run.run_id)]
    store.mark_importing(run.run_id, lines[:3])
    assert store.device_counts(run.run_id) == {"importing": 3, "pending": 1}
    store.record_import_results(
        run.run_id,
        [
            ImportResult(lines[0], "created", None, "iot-0"),
            ImportResult(lines[1], "rejected", "already exists in product a1PK (...)"),
            ImportResult(lines[2], "rejected", "exists with a different DeviceSecret"),
        ],
    )
    assert store.devices(run.run_id, ("created",))[0].iot_id == "iot-0"
    logged = [(t.entity, t.from_state, t.to_state, t.detail) for t in store.transitions(run.run_id)]
    assert logged[-2:] == [
        (f"device:{lines[1]}", "importing", "rejected", "already exists in product a1PK (...)"),
        (f"device:{lines[2]}", "importing", "rejected", "exists with a different DeviceSecret"),
    ]
    finish(store, run.run_id)
    assert store.reopen_existing(run.run_id, "already exists in product") == 1
    reopened = store.get_run(run.run_id)
    assert (reopened.status, reopened.error) == (
        "failed",
        "1 devices reopened for --existing adopt",
    )
    last = store.transitions(run.run_id, "run")[-1]
    assert (last.from_state, last.to_state, last.detail) == (
        "completed",
        "failed",
        "1 devices reopened for --existing adopt",
    )
    assert store.device_counts(run.run_id) == {"created": 1, "pending": 2, "rejected": 1}
    assert store.devices(run.run_id)[1].reason is None


def test_mark_importing_takes_only_pending_devices(store: JournalStore) -> None:
    run = import_run(store, n=2)
    first, second = (d.line for d in store.devices(run.run_id))
    store.mark_importing(run.run_id, [first])
    store.record_import_results(run.run_id, [ImportResult(first, "created", None, "iot-1")])
    store.mark_importing(run.run_id, [first, second])
    states = {d.line: d.state for d in store.devices(run.run_id)}
    assert states == {first: "created", second: "importing"}
    # A result for a device already ended does not overwrite it.
    store.record_import_results(run.run_id, [ImportResult(first, "failed", "late")])
    assert store.devices(run.run_id)[0].state == "created"


def test_no_import_results_write_nothing(store: JournalStore) -> None:
    run = import_run(store)
    before = (store.devices(run.run_id), store.transitions(run.run_id))
    store.record_import_results(run.run_id, [])
    assert (store.devices(run.run_id), store.transitions(run.run_id)) == before


def test_reopen_existing_leaves_an_unfinished_run_as_it_is(store: JournalStore) -> None:
    run = import_run(store, n=2)
    first = store.devices(run.run_id)[0].line
    store.start_run(run.run_id)
    store.mark_importing(run.run_id, [first])
    store.record_import_results(run.run_id, [ImportResult(first, "rejected", "already exists")])
    assert store.reopen_existing(run.run_id, "nothing like it") == 0
    assert store.reopen_existing(run.run_id, "already") == 1
    assert store.get_run(run.run_id).status == "running"
    assert [t.to_state for t in store.transitions(run.run_id, "run")] == ["planned", "running"]


def test_reopen_for_adoption_and_reject_missing(store: JournalStore) -> None:
    run_id = new_run(store, n=3, chunk=3).run_id
    app_id = store.applications(run_id)[0].app_id
    to_state(store, app_id, "intend_check", "record_apply_id")
    store.record_check_failed(app_id, {"dev00000": "exists", "dev00001": "exists"})
    finish(store, run_id)
    assert store.device_counts(run_id) == {"pending": 1, "rejected": 3}
    assert store.reopen_for_adoption(run_id) == 2
    run = store.get_run(run_id)
    assert (run.status, run.error) == ("failed", "2 devices reopened for --existing adopt")
    last = store.transitions(run_id, "run")[-1]
    assert (last.from_state, last.to_state) == ("completed", "failed")
    assert [(d.device_name, d.cause) for d in store.devices(run_id, ("adopted",))] == [
        ("dev00000", "check"),
        ("dev00001", "check"),
    ]
    store.reject_missing(run_id, "dev00001", "does not exist in product a1PK")
    missing = store.devices(run_id, ("rejected",))
    assert [(d.device_name, d.reason, d.cause) for d in missing if d.line != 99] == [
        ("dev00001", "does not exist in product a1PK", "missing")
    ]
    logged = store.transitions(run_id, "device:dev00001")
    assert [(t.from_state, t.to_state, t.detail) for t in logged] == [
        (None, "rejected", "does not exist in product a1PK")
    ]
    # Looked up and not found: a later --existing adopt does not look it up again.
    assert store.reopen_for_adoption(run_id) == 0


def test_reopen_for_adoption_keeps_a_failed_run_failed(store: JournalStore) -> None:
    run_id = new_run(store, n=2, chunk=2).run_id
    app_id = store.applications(run_id)[0].app_id
    store.intend_check(app_id)
    store.record_check_failed(app_id, {"dev00000": "exists"})
    store.start_run(run_id)
    store.fail_run(run_id, "interrupted")
    before = store.transitions(run_id, "run")
    assert store.reopen_for_adoption(run_id) == 1
    run = store.get_run(run_id)
    assert (run.status, run.error) == ("failed", "1 devices reopened for --existing adopt")
    assert store.transitions(run_id, "run") == before


# --- across runs -------------------------------------------------------------------------


def target_params(out: str = "/tmp/x.age", endpoint: str = ENDPOINT) -> dict[str, object]:
    return {"out": out, "endpoint": endpoint, "iot_instance_id": None}


def test_claims_name_unfinished_runs_that_may_have_created(store: JournalStore) -> None:
    names = [f"dev{i:05d}" for i in range(6)]
    sent = new_run(store, n=4, chunk=2, key="sent", params=target_params())
    first, second = store.applications(sent.run_id)
    to_state(store, first.app_id, *CHECKED, "intend_create")  # the call may have gone out
    to_state(store, second.app_id, *CHECKED)  # checked only: nothing was created
    elsewhere = new_run(store, n=4, chunk=4, key="far", params=target_params(endpoint="https://x"))
    to_state(store, store.applications(elsewhere.run_id)[0].app_id, *CHECKED, "intend_create")
    done = new_run(store, n=4, chunk=4, key="done", params=target_params())
    to_state(store, store.applications(done.run_id)[0].app_id, *CHECKED, "intend_create")
    finish(store, done.run_id)
    imported = store.plan_run(
        run_key="imp", kind="import", product_key="a1PK", params=target_params(),
        devices=[DeviceRow(2, "dev00005", None), DeviceRow(3, "dev00004", None)],
    )  # fmt: skip
    store.mark_importing(imported.run_id, [2])

    claims = store.claims(Scope("a1PK", ENDPOINT, ""), "mine", names)
    assert claims == [
        Claim(store.get_run(sent.run_id), ["dev00000", "dev00001"]),
        Claim(store.get_run(imported.run_id), ["dev00005"]),
    ]
    assert store.claims(Scope("a1PK", ENDPOINT, None), "sent", names) == claims[1:]
    assert store.claims(Scope("other", ENDPOINT, None), "mine", names) == []
    assert store.claims(Scope("a1PK", ENDPOINT, "iot-instance"), "mine", names) == []


def test_creators_name_the_earliest_run_that_created(store: JournalStore, clock: FakeClock) -> None:
    runs = []
    for key in ("old", "new"):
        run = new_run(store, n=3, chunk=3, key=key, params=target_params(out=f"/tmp/{key}"))
        app_id = store.applications(run.run_id)[0].app_id
        to_state(store, app_id, *CREATING)
        store.record_create_result(app_id, {"dev00002"}, retry=False, reason="boom")
        runs.append(store.get_run(run.run_id))
        clock.now += 1
    names = ["dev00000", "dev00001", "dev00002", "nobody"]
    found = store.creators(Scope("a1PK", ENDPOINT, None), "mine", names)
    assert found == {"dev00000": runs[0], "dev00001": runs[0]}
    assert store.creators(Scope("a1PK", ENDPOINT, None), "old", names) == {
        "dev00000": runs[1],
        "dev00001": runs[1],
    }
    assert store.creators(Scope("a1PK", "https://x", None), "mine", names) == {}


def test_creators_and_claims_of_many_names(store: JournalStore) -> None:
    run = new_run(store, n=1200, chunk=1200, key="big", params=target_params())
    app_id = store.applications(run.run_id)[0].app_id
    to_state(store, app_id, *CREATING)
    wanted = [f"dev{i:05d}" for i in range(0, 1200, 7)] + ["nobody"]
    assert store.claims(Scope("a1PK", ENDPOINT, None), "mine", wanted)[0].names == sorted(
        wanted[:-1]
    )
    store.record_create_result(app_id, (), retry=False, reason="")
    assert set(store.creators(Scope("a1PK", ENDPOINT, None), "mine", wanted)) == set(wanted[:-1])


def test_output_owners_are_completed_runs_of_that_file(store: JournalStore, tmp_path: Path) -> None:
    out = str(tmp_path / "creds.csv.age")
    done = new_run(store, key="done", params=target_params(out=out))
    finish(store, done.run_id)
    new_run(store, key="running", params=target_params(out=out))
    other = new_run(store, key="other", params=target_params(out=str(tmp_path / "b.age")))
    finish(store, other.run_id)
    owners = store.output_owners("mine", str(tmp_path / "." / "creds.csv.age"))
    assert [r.run_id for r in owners] == [done.run_id]
    assert store.output_owners("done", out) == []


# --- history -----------------------------------------------------------------------------


def test_transitions_are_stamped_and_filtered(store: JournalStore, clock: FakeClock) -> None:
    run_id = new_run(store, n=2, chunk=2).run_id
    app_id = store.applications(run_id)[0].app_id
    clock.now += 5
    store.intend_check(app_id)
    clock.now += 5
    store.start_run(run_id)
    history = store.transitions(run_id)
    assert [(t.entity, t.to_state, t.at - history[0].at) for t in history] == [
        ("run", "planned", 0),
        (f"app:{app_id}", "PLANNED", 0),
        (f"app:{app_id}", "INTENT_CHECK", 5),
        ("run", "running", 10),
    ]
    assert [t.to_state for t in store.transitions(run_id, "run")] == ["planned", "running"]
    assert store.transitions(run_id, "lease") == []
    assert store.transitions("nope") == []
