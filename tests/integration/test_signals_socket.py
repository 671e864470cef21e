"""SIGTERM and SIGINT stop a real ``provisioner`` process cleanly, at any moment.

A stop leaves no temporary output, releases the lease, keeps the journal consistent,
prints one line (stopped, nothing lost, the command that carries on) and exits 143
(SIGTERM) or 130 (SIGINT); the same command then completes with each device once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from socket_rig import (
    assert_complete,
    assert_never_throttled,
    assert_no_plaintext,
    decrypt,
    run_cli,
    write_input,
)

from provisioner.journal import Journal


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "kill_on", "code"),
    [
        (signal.SIGTERM, "run.chunk_check_submitted", 143),
        (signal.SIGTERM, "run.chunk_create_submitted", 143),
        (signal.SIGTERM, "run.chunk_exported", 143),
        (signal.SIGINT, "run.chunk_created", 130),
    ],
)
def test_a_signal_stops_cleanly_and_the_same_command_resumes(
    rig_factory: Any, sig: int, kill_on: str, code: int
) -> None:
    rig = rig_factory(check_seconds=0.3, create_seconds=0.4)
    names = [f"SG-{i:06d}" for i in range(1_500)]
    write_input(rig.tmp / "devices.csv", names)
    out = rig.tmp / "creds.csv.age"
    args = (
        "run", str(rig.tmp / "devices.csv"), "--product-key", rig.product_key,
        "--out", str(out), "--recipient", rig.recipient, "--chunk-size", "375",
    )  # fmt: skip
    got, _, message = run_cli(rig, *args, kill_on=kill_on, kill_with=sig)
    assert got == code, message
    lines = [line for line in message.splitlines() if line.strip()]
    assert len(lines) == 1, message
    assert "nothing was lost" in lines[0]
    assert "provisioner resume " in lines[0]
    assert "Traceback" not in message
    assert not out.exists()
    assert not list(rig.tmp.glob(".creds.csv.age.*.partial"))
    with Journal(rig.tmp / "journal.sqlite3") as journal:
        (run,) = journal.list_runs()
        assert run.lease is None
        assert run.status == "failed"
        assert run.run_id in lines[0]

    got, _, message = run_cli(rig, *args)
    assert got == 0, message
    assert_complete(decrypt(rig, out), names, rig.product_key)
    stats = rig.emulator.stats()
    assert "iot.device.CreateDeviceTaskIsRunning" not in stats["codes"]
    assert_never_throttled(rig)
    assert_no_plaintext(rig)


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.1, 0.2, 0.3, 0.5])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_early_signal_prints_no_traceback(tmp_path: Path, sig: int, delay: float) -> None:
    # The signal lands while Python starts or while polars and the CLI are imported.
    command = [sys.executable, "-m", "provisioner", "validate", str(tmp_path / "x.csv")]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as proc:
        time.sleep(delay)  # fault injection at a moment, not synchronisation
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    if proc.returncode in (-sig, 128 + sig):
        assert len(err.strip().splitlines()) <= 1
    else:  # it finished before the signal: the command's own one-line answer
        assert proc.returncode == 3, err
