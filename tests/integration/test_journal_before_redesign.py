"""A journal written before the run machinery was redesigned still resumes.

``tests/fixtures/journal_before_redesign`` was made by the code of that time: a run of
1,200 devices in four applications, SIGKILLed when the first application was created
(two applications CREATE_SUCCESS, two in CREATE), with the emulator's state file of
the same moment. Its paths were written as /FIXTURE and its endpoint is rewritten to
the emulator started here; nothing else is touched.
"""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyrage

from provisioner.emulator.app import create_app
from provisioner.emulator.config import EmulatorConfig
from provisioner.emulator.serve import running_emulator

FIXTURE = Path(__file__).parent.parent / "fixtures" / "journal_before_redesign"
KEY_ID, KEY_SECRET = "fixture-key", "fixture-secret-0123456789"


def _relocate(journal: Path, here: Path, endpoint: str) -> str:
    with sqlite3.connect(journal) as conn:
        run_id, params = conn.execute("SELECT run_id, params FROM runs").fetchone()
        moved = json.loads(params)
        moved["input"] = moved["input"].replace("/FIXTURE", str(here))
        moved["out"] = moved["out"].replace("/FIXTURE", str(here))
        moved["endpoint"] = endpoint
        conn.execute("UPDATE runs SET params = ? WHERE run_id = ?", (json.dumps(moved), run_id))
    return str(run_id)


def test_a_run_killed_by_the_old_code_is_resumed(tmp_path: Path) -> None:
    for name in ("journal.sqlite3", "emulator.sqlite3", "devices.csv", "station.key"):
        shutil.copy(FIXTURE / name, tmp_path / name)
    config = EmulatorConfig(
        accounts={KEY_ID: KEY_SECRET},
        state_path=tmp_path / "emulator.sqlite3",
        check_seconds=0.05,
        create_seconds=0.05,
    )
    app = create_app(config)
    with running_emulator(config, app=app) as url:
        run_id = _relocate(tmp_path / "journal.sqlite3", tmp_path, url)
        env = {
            "ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": KEY_SECRET,
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
        }
        done = subprocess.run(
            [sys.executable, "-m", "provisioner", "resume", run_id,
             "--journal", str(tmp_path / "journal.sqlite3"), "--log-format", "json"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        product = app.state.emulator.world.products[
            (FIXTURE / "product_key.txt").read_text().strip()
        ]
        server = {name: device.device_secret for name, device in product.devices.items()}
        stats = app.state.emulator.stats()
    identity = pyrage.x25519.Identity.from_str((tmp_path / "station.key").read_text().split()[-1])
    plain = pyrage.decrypt((tmp_path / "creds.csv.age").read_bytes(), [identity]).decode()
    rows = list(csv.DictReader(plain.splitlines()))
    names = [r["DeviceName"] for r in rows]
    assert sorted(names) == [f"LEG-{i:05d}" for i in range(1200)]
    assert {r["DeviceName"]: r["DeviceSecret"] for r in rows} == server
    # The applications found in CREATE were polled, not submitted again.
    assert "iot.device.CreateDeviceTaskIsRunning" not in stats["codes"]
    assert stats["requests"].get("BatchRegisterDeviceWithApplyId", 0) == 0
    assert stats["requests"].get("BatchCheckDeviceNames", 0) == 0
