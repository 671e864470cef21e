"""Leases: the decision ``holder_alive`` without I/O, then the contract of every store
(take over a dead holder, refuse a live one, a taken-over holder stops)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st
from journal_kit import FakeClock, OpenStore, new_run

from provisioner.errors import JournalError, RunInProgressError
from provisioner.journal import JournalStore, Lease
from provisioner.journal.leases import holder_alive

HERE, ME = "here", 100
NOW = 1_700_000_000.0


def lease(pid: int, host: str, age: float) -> Lease:
    return Lease(pid=pid, host=host, since=NOW - age - 5, heartbeat=NOW - age, token="t")


def decide(held: Lease, alive: set[int], stale: float = 60.0, reuse: float = 600.0) -> bool:
    return holder_alive(
        held,
        now=NOW,
        hostname=HERE,
        pid=ME,
        is_alive=alive.__contains__,
        stale_after=stale,
        reuse_after=reuse,
    )


# --- the decision (pure) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("held", "alive", "expected"),
    [
        (lease(ME, HERE, 0), {ME}, False),  # ourselves: let go without release
        (lease(7, HERE, 0), {7}, True),  # a live process of this host
        (lease(7, HERE, 0), set(), False),  # its pid is gone: dead at once
        (lease(7, HERE, 599), {7}, True),
        (lease(7, HERE, 600), {7}, False),  # so old the pid was reused after a reboot
        (lease(7, "there", 59.9), set(), True),  # another host: only the heartbeat counts
        (lease(7, "there", 60), {7}, False),
        (lease(ME, "there", 0), set(), True),  # same pid elsewhere is someone else
    ],
)
def test_holder_alive_rules(held: Lease, alive: set[int], expected: bool) -> None:
    assert decide(held, alive) is expected


def test_an_old_lease_is_not_probed() -> None:
    probed: list[int] = []

    def probe(pid: int) -> bool:
        probed.append(pid)
        return True

    held = lease(7, HERE, 601)
    assert not holder_alive(
        held, now=NOW, hostname=HERE, pid=ME, is_alive=probe, stale_after=60, reuse_after=600
    )
    assert probed == []  # a pid from before a reboot may be anybody's now


@given(
    age=st.floats(min_value=0, max_value=10_000, allow_nan=False),
    stale=st.floats(min_value=1, max_value=5_000, allow_nan=False),
    pid=st.integers(min_value=1, max_value=2**22),
    exists=st.booleans(),
)
def test_another_host_is_alive_exactly_while_its_heartbeat_is_fresh(
    age: float, stale: float, pid: int, exists: bool
) -> None:
    held = lease(pid, "elsewhere", age)
    alive = {pid} if exists else set()
    assert decide(held, alive, stale=stale) == (NOW - held.heartbeat < stale)


@given(
    age=st.floats(min_value=0, max_value=10_000, allow_nan=False),
    reuse=st.floats(min_value=1, max_value=5_000, allow_nan=False),
    pid=st.integers(min_value=1, max_value=2**22),
    exists=st.booleans(),
)
def test_this_host_is_alive_exactly_while_its_pid_exists_and_is_recent(
    age: float, reuse: float, pid: int, exists: bool
) -> None:
    held = lease(pid, HERE, age)
    alive = {pid} if exists else set()
    expected = pid != ME and exists and NOW - held.heartbeat < reuse
    assert decide(held, alive, reuse=reuse) == expected


# --- the store ---------------------------------------------------------------------------


def test_live_holder_on_same_host_blocks(
    store: JournalStore, open_store: OpenStore, clock: FakeClock
) -> None:
    run_id = new_run(store).run_id
    holder = open_store(pid=4242, hostname="host-a", is_alive=lambda p: True)
    holder.acquire_lease(run_id)
    probe = open_store(pid=1, hostname="host-a", is_alive=lambda p: p == 4242)
    with pytest.raises(RunInProgressError) as info:
        probe.acquire_lease(run_id)
    message = str(info.value)
    assert f"run {run_id} is in progress" in message
    assert "pid 4242 on host-a" in message
    assert "2023-11-14T22:13:20Z" in message  # the lease's since, in UTC
    held = probe.get_run(run_id).lease
    assert held is not None
    assert (held.pid, held.host) == (4242, "host-a")  # the refusal changed nothing
    assert probe.holder_alive(held)


def test_dead_holder_is_taken_over_at_once(open_store: OpenStore) -> None:
    dead = open_store(pid=4242, hostname="host-a", is_alive=lambda p: False)
    run_id = new_run(dead).run_id
    old = dead.acquire_lease(run_id)
    probe = open_store(pid=7, hostname="host-a", is_alive=lambda p: False)
    assert not probe.holder_alive(old)
    lease = probe.acquire_lease(run_id)
    assert (lease.pid, lease.host) == (7, "host-a")
    assert lease.token != old.token
    last = probe.transitions(run_id, "lease")[-1]
    assert (last.from_state, last.to_state) == (None, "pid 7 on host-a")
    assert last.detail == "taken over from pid 4242 on host-a"
    # The old holder, should it wake up, finds out at its next heartbeat.
    with pytest.raises(RunInProgressError, match="taken over"):
        dead.heartbeat(run_id, old)
    probe.heartbeat(run_id, lease)


def test_real_pid_probe(store: JournalStore, open_store: OpenStore) -> None:
    """Without an injected probe, a process that exists (our parent) is alive."""
    run_id = new_run(store).run_id
    parent = open_store(pid=os.getppid(), hostname="host-a")
    parent.acquire_lease(run_id)
    with pytest.raises(RunInProgressError):
        open_store(hostname="host-a").acquire_lease(run_id)


def test_other_host_blocks_until_heartbeat_is_stale(
    open_store: OpenStore, clock: FakeClock
) -> None:
    mine = open_store(pid=1, hostname="here")
    run_id = new_run(mine).run_id
    remote = open_store(pid=1, hostname="elsewhere")
    remote_lease = remote.acquire_lease(run_id)
    clock.now += 30
    remote.heartbeat(run_id, remote_lease)
    clock.now += 59
    with pytest.raises(RunInProgressError, match="elsewhere"):
        mine.acquire_lease(run_id)
    clock.now += 2
    lease = mine.acquire_lease(run_id)
    with pytest.raises(RunInProgressError, match="taken over"):
        remote.heartbeat(run_id, remote_lease)
    clock.now += 5
    mine.heartbeat(run_id, lease)
    held = mine.get_run(run_id).lease
    assert held is not None
    assert (held.host, held.heartbeat, held.since) == ("here", clock.now, clock.now - 5)


def test_release_lets_the_next_process_in(open_store: OpenStore) -> None:
    holder = open_store(pid=4242, hostname="host-a", is_alive=lambda p: True)
    run_id = new_run(holder).run_id
    lease = holder.acquire_lease(run_id)
    holder.release_lease(run_id, lease)
    assert holder.get_run(run_id).lease is None
    nxt = open_store(pid=5, hostname="host-a", is_alive=lambda p: True)
    assert nxt.acquire_lease(run_id).pid == 5
    assert nxt.get_run(run_id).lease is not None


def test_a_stale_release_does_not_free_the_new_holder(open_store: OpenStore) -> None:
    old = open_store(pid=4242, hostname="host-a", is_alive=lambda p: False)
    run_id = new_run(old).run_id
    old_lease = old.acquire_lease(run_id)
    new = open_store(pid=5, hostname="host-a", is_alive=lambda p: False)
    new.acquire_lease(run_id)
    old.release_lease(run_id, old_lease)
    held = new.get_run(run_id).lease
    assert held is not None
    assert held.pid == 5


def test_a_lease_of_an_unknown_run_is_an_error(store: JournalStore) -> None:
    with pytest.raises(JournalError, match="no run 'nope'"):
        store.acquire_lease("nope")
