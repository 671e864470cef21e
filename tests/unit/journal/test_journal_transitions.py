"""The journal's machines through the protocol: every named move, from every state, is
allowed exactly when the tables of :mod:`provisioner.journal.models` say so.

The rule is restated here from ``TRANSITIONS`` / ``APP_MOVES`` / ``RUN_TRANSITIONS``
(not taken from the store's own helper), then every (state, move) pair is tried on a
store, and random walks check the history the store keeps.
"""

from __future__ import annotations

import itertools
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from journal_kit import MOVE_TARGETS, app_path, new_run, perform, perform_run, run_path

from provisioner.errors import JournalError
from provisioner.journal import (
    APP_MOVES,
    RUN_TRANSITIONS,
    TRANSITIONS,
    AppState,
    JournalStore,
    RunStatus,
    can_transition,
)
from provisioner.journal.models import RUN_MOVES, move_allowed

APP_STATES = sorted(get_args(AppState))
RUN_STATUSES = sorted(get_args(RunStatus))
_keys = itertools.count()


def allowed_by_table(move: str, current: str, target: str) -> bool:
    """The rule, from the tables: a named move goes from one of its sources along an
    edge of the machine; a plain move to the state the application is in is a no-op."""
    spec = APP_MOVES[move]
    if target not in spec.targets:
        return False
    if current == target:
        return spec.plain
    return current in spec.sources and target in TRANSITIONS[current]


def snapshot(store: JournalStore, run_id: str) -> tuple[Any, ...]:
    return (
        store.get_run(run_id),
        store.applications(run_id),
        store.devices(run_id),
        store.transitions(run_id),
    )


def fresh_app(store: JournalStore, state: str = "PLANNED") -> tuple[str, int]:
    """A new run of four named devices in one application, taken to ``state``."""
    run = new_run(store, n=4, chunk=4, key=f"walk-{next(_keys)}")
    app_id = store.applications(run.run_id)[0].app_id
    for move, target in app_path(state):
        perform(store, app_id, move, target)
    assert store.application(app_id).state == state
    return run.run_id, app_id


# --- the tables (pure) ----------------------------------------------------------------


def test_transition_table() -> None:
    assert can_transition("PLANNED", "INTENT_CHECK")
    assert can_transition("INTENT_CREATE", "CREATE_SUCCESS")
    assert can_transition("LOST", "INTENT_REGISTER")
    assert not can_transition("PLANNED", "CREATE")
    assert not can_transition("DONE", "CHECK")
    assert not can_transition("CHECK_FAILED", "CHECK_SUCCESS")
    assert not can_transition("LOST", "CREATE")


def test_every_named_move_is_an_edge_of_the_machine() -> None:
    for name, spec in APP_MOVES.items():
        assert spec.sources, name
        for source in spec.sources:
            for target in spec.targets:
                assert can_transition(source, target), (name, source, target)


def test_every_edge_of_the_machine_has_a_named_move() -> None:
    edges = {(s, t) for s, targets in TRANSITIONS.items() for t in targets}
    named = {(s, t) for spec in APP_MOVES.values() for s in spec.sources for t in spec.targets}
    assert named == edges


def test_every_state_is_reachable_through_named_moves() -> None:
    assert set(TRANSITIONS) == set(APP_STATES)
    for state in APP_STATES:
        assert app_path(state) or state == "PLANNED", state


def test_the_run_table_covers_every_status() -> None:
    assert set(RUN_TRANSITIONS) == set(RUN_STATUSES)
    for targets in RUN_TRANSITIONS.values():
        assert targets <= set(RUN_STATUSES)
    assert set(RUN_MOVES.values()) == set(RUN_STATUSES) - {"planned"}
    # Nothing goes back to planned: a planned run has done nothing yet.
    assert not any("planned" in targets for targets in RUN_TRANSITIONS.values())


@given(
    move=st.sampled_from(sorted(APP_MOVES)),
    current=st.sampled_from(APP_STATES),
    target=st.sampled_from(APP_STATES),
)
def test_move_allowed_is_the_table(move: str, current: str, target: str) -> None:
    assert move_allowed(move, current, target) == allowed_by_table(move, current, target)


# --- applications, through the store ------------------------------------------------


def test_every_move_from_every_state_follows_the_table(store: JournalStore) -> None:
    """All 14 states x every (move, target): allowed iff the table says so; a refusal
    names the move and writes nothing; a plain move repeated writes nothing either."""
    wrong: list[tuple[str, str, str, str]] = []
    for state, (move, target) in itertools.product(APP_STATES, MOVE_TARGETS):
        run_id, app_id = fresh_app(store, state)
        before = snapshot(store, run_id)
        expected = allowed_by_table(move, state, target)
        try:
            perform(store, app_id, move, target)
        except JournalError as exc:
            if expected:
                wrong.append((state, move, target, f"refused: {exc}"))
            elif move not in str(exc) or state not in str(exc):
                wrong.append((state, move, target, f"message: {exc}"))
            elif snapshot(store, run_id) != before:
                wrong.append((state, move, target, "refused but wrote"))
            continue
        if not expected:
            wrong.append((state, move, target, "allowed"))
        elif store.application(app_id).state != target:
            wrong.append((state, move, target, f"ended {store.application(app_id).state}"))
        elif state == target and snapshot(store, run_id) != before:
            wrong.append((state, move, target, "repeated move wrote"))
        elif state != target:
            last = store.transitions(run_id, f"app:{app_id}")[-1]
            if (last.from_state, last.to_state) != (state, target):
                wrong.append((state, move, target, f"logged {last}"))
    assert wrong == []


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(walk=st.lists(st.sampled_from(MOVE_TARGETS), max_size=10))
def test_a_random_walk_follows_the_machine_and_its_history(
    store: JournalStore, walk: list[tuple[str, str]]
) -> None:
    run_id, app_id = fresh_app(store)
    state, history = "PLANNED", [(None, "PLANNED")]
    for move, target in walk:
        if allowed_by_table(move, state, target):
            perform(store, app_id, move, target)
            if target != state:
                history.append((state, target))
                state = target
        else:
            with pytest.raises(JournalError, match=move):
                perform(store, app_id, move, target)
        assert store.application(app_id).state == state
    logged = [(t.from_state, t.to_state) for t in store.transitions(run_id, f"app:{app_id}")]
    assert logged == history


def test_a_move_on_an_unknown_application_is_an_error(store: JournalStore) -> None:
    with pytest.raises(JournalError, match="no application 4242"):
        store.intend_check(4242)
    with pytest.raises(JournalError, match="no application 4242"):
        store.application(4242)


# --- run status -------------------------------------------------------------------------


@pytest.mark.parametrize("status", RUN_STATUSES)
@pytest.mark.parametrize("move", sorted(RUN_MOVES))
def test_every_run_move_from_every_status_follows_the_table(
    store: JournalStore, status: str, move: str
) -> None:
    run = new_run(store)
    for step in run_path(status):
        perform_run(store, run.run_id, step)
    assert store.get_run(run.run_id).status == status
    target = RUN_MOVES[move]
    before = snapshot(store, run.run_id)
    if target not in RUN_TRANSITIONS[status]:
        with pytest.raises(JournalError, match=f"{move} \\({status} -> {target}\\)"):
            perform_run(store, run.run_id, move)
        assert snapshot(store, run.run_id) == before
        return
    perform_run(store, run.run_id, move)
    after = store.get_run(run.run_id)
    assert after.status == target
    logged = store.transitions(run.run_id, "run")
    if status == target:
        # A run left running by a process that died: taken as it is, no history line.
        assert logged == [t for t in before[3] if t.entity == "run"]
    else:
        assert (logged[-1].from_state, logged[-1].to_state) == (status, target)
        assert logged[-1].detail == after.error


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(walk=st.lists(st.sampled_from(sorted(RUN_MOVES)), max_size=8))
def test_a_random_run_walk_follows_the_table(store: JournalStore, walk: list[str]) -> None:
    run = new_run(store, key=f"run-walk-{next(_keys)}")
    status, history = "planned", [(None, "planned")]
    for move in walk:
        target = RUN_MOVES[move]
        if target in RUN_TRANSITIONS[status]:
            perform_run(store, run.run_id, move)
            if target != status:
                history.append((status, target))
                status = target
        else:
            with pytest.raises(JournalError, match=move):
                perform_run(store, run.run_id, move)
        assert store.get_run(run.run_id).status == status
    logged = [(t.from_state, t.to_state) for t in store.transitions(run.run_id, "run")]
    assert logged == history
