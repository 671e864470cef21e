"""The journal's files: private from the first byte, never reached through a symbolic link."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provisioner.errors import JournalError
from provisioner.journal import Journal, open_journal


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_new_journal_is_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        with Journal(tmp_path / "state" / "provisioner" / "journal.sqlite3") as journal:
            journal.plan_run(run_key="k", kind="check_create", product_key="a1", params={})
    finally:
        os.umask(old)
    directory = tmp_path / "state" / "provisioner"
    assert _mode(directory) == 0o700
    for path in directory.iterdir():
        assert _mode(path) == 0o600, path.name


@pytest.mark.parametrize("mode", [0o755, 0o775, 0o777, 0o750])
def test_an_existing_directory_of_ours_is_tightened(tmp_path: Path, mode: int) -> None:
    directory = tmp_path / "journals"
    directory.mkdir()
    directory.chmod(mode)
    Journal(directory / "journal.sqlite3").close()
    assert _mode(directory) == 0o700


def test_a_shared_sticky_directory_is_left_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    Journal(shared / "journal.sqlite3").close()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert _mode(shared / "journal.sqlite3") == 0o600


def test_an_existing_journal_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    Journal(path).close()
    path.chmod(0o644)
    Journal(path).close()
    assert _mode(path) == 0o600


@pytest.mark.parametrize("target_exists", [True, False])
def test_a_symbolic_link_is_refused_and_its_target_untouched(
    tmp_path: Path, target_exists: bool
) -> None:
    target = tmp_path / "elsewhere" / "important.db"
    target.parent.mkdir()
    if target_exists:
        target.write_bytes(b"precious")
        target.chmod(0o644)
    link = tmp_path / "journal.sqlite3"
    link.symlink_to(target)
    with pytest.raises(JournalError, match="symbolic link"):
        Journal(link)
    if target_exists:
        assert target.read_bytes() == b"precious"
        assert _mode(target) == 0o644
    else:
        assert not target.exists()


def test_a_directory_in_place_of_the_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "journal.sqlite3").mkdir()
    with pytest.raises(JournalError, match="journal"):
        Journal(tmp_path / "journal.sqlite3")


def test_processes_opening_a_new_journal_together_all_get_in(tmp_path: Path) -> None:
    # Two factory lines started by one timer open the journal at the same moment; the
    # switch of a new file to WAL must not answer one of them "database is locked".
    code = (
        "import sys, time\n"
        "from provisioner.journal import open_journal\n"
        "start = float(sys.argv[2])\n"
        "time.sleep(max(0.0, start - time.time()))\n"
        "with open_journal(sys.argv[1]) as j:\n"
        "    j.plan_run(run_key=sys.argv[3], kind='k', product_key='a1', params={})\n"
    )
    for attempt in range(4):
        path = tmp_path / f"j{attempt}" / "journal.sqlite3"
        start = time.time() + 1.0  # every process waits for the same instant
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(path), str(start), f"key-{i}"],
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(4)
        ]
        errors = [p.communicate(timeout=60)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
        with open_journal(str(path)) as journal:
            assert len(journal.list_runs()) == 4
