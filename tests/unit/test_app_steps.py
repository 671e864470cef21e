"""The step functions of applications, table-tested without a network or a journal.

Each row is (state, event) -> the kinds of actions, in order, and the journal
transitions among them. A second set of properties holds for every state and event:
a creation is never submitted from a state where it may already have run, and every
submission that creates something follows its intent.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioner.api.records import ApplyStatus, InvalidDetail
from provisioner.errors import JournalError, TerminalApiError, ThrottledError
from provisioner.journal import AppRecord, DeviceRecord
from provisioner.journal.models import TRANSITIONS
from provisioner.pipeline.kinds.apps import (
    CHECK_FINAL,
    CREATE_FINAL,
    AppView,
    check_create_step,
    random_step,
)
from provisioner.pipeline.machine import (
    Accepted,
    Adopt,
    Ask,
    Begin,
    Created,
    Event,
    Explain,
    Explained,
    Export,
    Exported,
    Fail,
    Poll,
    Refused,
    Status,
    SubmitCheck,
    SubmitCreate,
    SubmitRegister,
    Unanswered,
    Write,
)


def app(state: str, *, attempt: int = 0, size: int = 3, apply_id: str | None = "77") -> AppRecord:
    return AppRecord(
        app_id=5,
        run_id="r",
        chunk_no=0,
        parent_id=None,
        kind="check_create",
        apply_id=apply_id,
        state=state,  # type: ignore[arg-type]
        attempt=attempt,
        size=size,
        created_at=0.0,
        updated_at=0.0,
    )


def pending(*names: str) -> tuple[DeviceRecord, ...]:
    return tuple(DeviceRecord(i + 2, n, None, 5, "pending", None) for i, n in enumerate(names))


def shape(actions: list[Any]) -> list[str]:
    """Action kinds, with the transition name for writes: ``Write:intend_check``."""
    return [f"Write:{a.name}" if isinstance(a, Write) else type(a).__name__ for a in actions]


def cc(state: str, event: Event, *, adopt: bool = False, **kw: Any) -> list[Any]:
    view = AppView(app(state, **kw), pending("dev-a", "dev-b", "dev-c"))
    return check_create_step(view, event, product_key="a1PK", adopt=adopt)


STATUS = {s: ApplyStatus(s) for s in (*CHECK_FINAL, *CREATE_FINAL, "CHECK", "CREATE")}
FAILED_CHECK = ApplyStatus("CHECK_FAILED", invalid_names=["dev-b"])
FAILED_CREATE = ApplyStatus("CREATE_FAILED", invalid_details=[InvalidDetail("dev-c", "boom")])


@pytest.mark.parametrize(
    ("state", "event", "expected"),
    [
        ("PLANNED", Begin(False), ["Write:intend_check", "SubmitCheck"]),
        ("INTENT_CHECK", Begin(True), ["SubmitCheck"]),
        ("CHECK", Begin(True), ["Poll"]),
        ("CHECK_SUCCESS", Begin(True), ["Write:intend_create", "SubmitCreate"]),
        ("INTENT_CREATE", Begin(True), ["Ask"]),
        ("CREATE", Begin(True), ["Poll"]),
        ("CREATE_SUCCESS", Begin(True), ["Export"]),
        ("CREATE_FAILED", Begin(True), ["Export"]),
        ("DONE", Begin(True), ["Export"]),
        ("SPLIT", Begin(True), []),
        ("CHECK_FAILED", Begin(True), []),
        ("INTENT_CHECK", Accepted("9"), ["Write:record_apply_id", "Note", "Poll"]),
        (
            "CHECK",
            Status(STATUS["CHECK_SUCCESS"]),
            ["Write:check_passed", "Advance", "Note", "Write:intend_create", "SubmitCreate"],
        ),
        ("CHECK", Status(FAILED_CHECK), ["Explain"]),
        (
            "CHECK",
            Explained({"dev-b": "exists"}, {}),
            ["Write:record_check_failed", "Advance", "Note", "Total"],
        ),
        ("INTENT_CREATE", Created(), ["Write:record_creating", "Note", "Poll"]),
        ("INTENT_CREATE", Status(STATUS["CHECK_SUCCESS"]), ["Note", "SubmitCreate"]),
        ("INTENT_CREATE", Status(STATUS["CREATE"]), ["Note", "Write:record_creating", "Poll"]),
        (
            "CREATE",
            Status(STATUS["CREATE_SUCCESS"]),
            ["Write:record_create_result", "Advance", "Note", "Export"],
        ),
        ("CREATE_SUCCESS", Exported(frozenset({"dev-a"})), ["Write:mark_exported", "Note"]),
    ],
)
def test_check_create_table(state: str, event: Event, expected: list[str]) -> None:
    assert shape(cc(state, event)) == expected


def test_a_check_that_ran_is_polled_fresh_only_when_it_began_here() -> None:
    (poll,) = cc("CHECK", Begin(True))
    assert isinstance(poll, Poll)
    assert poll.finals == CHECK_FINAL
    assert not poll.fresh
    *_, fresh = cc("INTENT_CHECK", Accepted("9"))
    assert isinstance(fresh, Poll)
    assert fresh.fresh


def test_the_check_failure_keeps_the_servers_reason_and_names_the_earlier_run() -> None:
    details = [InvalidDetail("dev-b", "already exists"), InvalidDetail("elsewhere", "not ours")]
    (explain,) = cc("CHECK", Status(ApplyStatus("CHECK_FAILED", invalid_details=details)))
    assert isinstance(explain, Explain)
    assert dict(explain.messages) == {"dev-b": "already exists"}  # only our pending names
    clause = "; created by run abc, credentials in /o"
    write, *_ = cc("CHECK", Explained({"dev-b": "already exists"}, {"dev-b": clause}))
    assert isinstance(write, Write)
    reason = write.args["rejected"]["dev-b"]
    assert reason == f"already exists (BatchCheckDeviceNames, product a1PK){clause}"
    assert write.args["adopt"] == ()


def test_adopt_looks_the_refused_names_up() -> None:
    actions = cc("CHECK", Explained({"dev-b": "exists"}, {}), adopt=True)
    assert shape(actions)[-1] == "Adopt"
    assert actions[0].args["adopt"] == ("dev-b",)
    assert isinstance(actions[-1], Adopt)
    assert list(actions[-1].names) == ["dev-b"]


def test_a_check_failure_without_our_names_stops_the_run() -> None:
    (fail,) = cc("CHECK", Status(ApplyStatus("CHECK_FAILED", invalid_names=["stranger"])))
    assert isinstance(fail, Fail)
    assert "without naming" in str(fail.error)


@pytest.mark.parametrize(
    ("code", "size", "expected"),
    [
        ("iot.device.DeviceCountExceeded", 3, ["Write:split", "Note"]),
        ("iot.device.RepeatedDeviceName", 3, ["Fail"]),  # our names are fine: a real error
        ("iot.prod.NotExistedProduct", 3, ["Fail"]),
    ],
)
def test_a_refused_check(code: str, size: int, expected: list[str]) -> None:
    error = TerminalApiError("BatchCheckDeviceNames", code, "no")
    assert shape(cc("INTENT_CHECK", Refused(error), size=size)) == expected


def test_a_refused_check_of_names_our_rules_refuse_too_rejects_them() -> None:
    view = AppView(app("INTENT_CHECK"), pending("good-1", "x", "good-2"))
    error = TerminalApiError("BatchCheckDeviceNames", "iot.device.InvalidFormattedDeviceName", "")
    write, *_ = check_create_step(view, Refused(error), product_key="a1PK", adopt=False)
    assert isinstance(write, Write)
    assert set(write.args["rejected"]) == {"x"}


def test_creation_failures_are_retried_once() -> None:
    first = cc("CREATE", Status(FAILED_CREATE))
    assert first[0].args["retry"] is True
    assert first[0].args["failed"] == ("dev-c",)
    second = cc("CREATE", Status(FAILED_CREATE), attempt=1)
    assert second[0].args["retry"] is False
    assert "Total" in shape(second)  # the failed devices leave the totals
    assert second[0].args["reason"].startswith("boom")


@pytest.mark.parametrize("server", ["CHECK", "CHECK_FAILED"])
def test_a_server_state_the_journal_cannot_explain_stops_the_run(server: str) -> None:
    (*_, fail) = cc("INTENT_CREATE", Status(ApplyStatus(server)))
    assert isinstance(fail, Fail)
    assert isinstance(fail.error, JournalError)


# --- random names -------------------------------------------------------------------


def rn(state: str, event: Event, *, lost: str = "fail", **kw: Any) -> list[Any]:
    return random_step(AppView(app(state, **kw)), event, lost=lost)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "event", "lost", "expected"),
    [
        ("PLANNED", Begin(False), "fail", ["SubmitRegister"]),
        ("INTENT_REGISTER", Begin(True), "fail", ["Write:mark_lost", "Note"]),
        (
            "INTENT_REGISTER",
            Begin(True),
            "resubmit",
            ["Write:mark_lost", "Note", "Write:intend_register", "SubmitRegister"],
        ),
        (
            "INTENT_REGISTER",
            Begin(True),
            "abandon",
            ["Write:mark_lost", "Note", "Write:abandon", "Note", "Total"],
        ),
        ("LOST", Begin(True), "fail", []),
        ("LOST", Begin(False), "resubmit", []),  # only an operator's resume decides
        ("LOST", Begin(True), "resubmit", ["Write:intend_register", "SubmitRegister"]),
        ("INTENT_REGISTER", Accepted("8"), "fail", ["Write:record_registered", "Note", "Poll"]),
        ("INTENT_REGISTER", Unanswered("lost"), "fail", ["Write:mark_lost", "Note"]),
        ("CREATE", Begin(True), "fail", ["Poll"]),
        (
            "CREATE",
            Status(ApplyStatus("CREATE_SUCCESS")),
            "fail",
            ["Write:record_random_result", "Advance", "Note", "Export"],
        ),
        (
            "CREATE_SUCCESS",
            Exported(frozenset({"x"})),
            "fail",
            ["Write:record_random_names", "Write:mark_exported", "Note"],
        ),
        ("ABANDONED", Begin(True), "fail", []),
    ],
)
def test_random_table(state: str, event: Event, lost: str, expected: list[str]) -> None:
    assert shape(rn(state, event, lost=lost)) == expected


@pytest.mark.parametrize(
    "error",
    [
        TerminalApiError("BatchRegisterDevice", "iot.prod.NotExistedProduct", "no"),
        ThrottledError("BatchRegisterDevice", "Throttling.User", "slow down"),
    ],
)
def test_a_registration_that_never_ran_goes_back_to_planned(error: Any) -> None:
    assert shape(rn("INTENT_REGISTER", Refused(error))) == ["Write:unregister", "Fail"]


def test_a_refused_size_is_split_in_two() -> None:
    error = TerminalApiError("BatchRegisterDevice", "iot.device.DeviceCountExceeded", "")
    (write, _) = rn("INTENT_REGISTER", Refused(error), size=9)
    assert write.args["sizes"] == (5, 4)


def test_created_random_names_failing_without_names_stop_the_run() -> None:
    (fail,) = rn("CREATE", Status(ApplyStatus("CREATE_FAILED")))
    assert isinstance(fail, Fail)


# --- properties over every state and event ------------------------------------------------

_EVENTS: list[Event] = [
    Begin(False),
    Begin(True),
    Accepted("9"),
    Created(),
    Unanswered("x"),
    Refused(TerminalApiError("A", "iot.x", "y")),
    Refused(TerminalApiError("A", "iot.device.DeviceCountExceeded", "")),
    *(Status(s) for s in STATUS.values()),
    Status(FAILED_CHECK),
    Status(FAILED_CREATE),
    Explained({"dev-a": "m"}, {}),
    Exported(frozenset({"dev-a"})),
]
# A creation may have run in these states: a blind submission there could create twice.
_MAY_HAVE_CREATED = {"INTENT_CREATE", "CREATE", "CREATE_SUCCESS", "CREATE_FAILED", "DONE"}


@given(state=st.sampled_from(sorted(TRANSITIONS)), event=st.sampled_from(_EVENTS))
def test_no_blind_resubmission_and_intents_come_first(state: str, event: Event) -> None:
    for step in (cc, lambda s, e: rn(s, e, lost="resubmit")):
        actions = step(state, event)
        kinds = shape(actions)
        if "SubmitCreate" in kinds:
            before = kinds[: kinds.index("SubmitCreate")]
            # From a state where a submission may have arrived, only after asking.
            assert state not in _MAY_HAVE_CREATED or (
                state == "INTENT_CREATE" and isinstance(event, Status | Begin)
            )
            assert state == "INTENT_CREATE" or "Write:intend_create" in before
        if "SubmitCheck" in kinds:
            assert state in ("PLANNED", "INTENT_CHECK")
        if "SubmitRegister" in kinds:
            assert state in ("PLANNED", "LOST", "INTENT_REGISTER")


@given(state=st.sampled_from(sorted(TRANSITIONS)), event=st.sampled_from(_EVENTS))
def test_steps_are_pure(state: str, event: Event) -> None:
    # Same input, same decision (errors compared by their message: exceptions are not equal).
    for step in (cc, rn):
        first, again = step(state, event), step(state, event)
        assert [repr(a) for a in first] == [repr(a) for a in again]


def test_export_and_poll_actions_carry_what_the_engine_needs() -> None:
    assert any(isinstance(a, Export) for a in cc("CREATE", Status(STATUS["CREATE_SUCCESS"])))
    assert any(isinstance(a, Ask) for a in cc("INTENT_CREATE", Begin(True)))
    assert any(isinstance(a, SubmitCheck) for a in cc("PLANNED", Begin(False)))
    assert any(isinstance(a, SubmitCreate) for a in cc("CHECK_SUCCESS", Begin(True)))
    (register,) = rn("PLANNED", Begin(False), size=42)
    assert isinstance(register, SubmitRegister)
    assert register.size == 42
