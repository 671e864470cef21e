"""Import throughput against the ImportDevice limit: `provisioner import` of 1,500 devices
from an age-encrypted file, against `provisioner emulator --latency-ms 100` at the real
QPS limits (ImportDevice 50 QPS), both as separate processes.

Reports the wall time, devices/s over the import stage (first to last result, from the
run's report) and as a share of 50/s, and throttled responses. Target: >= 90 % of the
limit with zero throttled responses.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyrage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from emulated import emulator

DEVICES = 1_500
LIMIT = 50


def measure(work: Path) -> dict[str, float]:
    with emulator(work) as emu:
        env, pk = emu.env, emu.product_key
        key = pyrage.x25519.Identity.generate()
        text = io.StringIO()
        text.write("DeviceName,DeviceSecret,Sn\n")
        for i in range(DEVICES):
            text.write(f"IMP-{i:07d},secret{i:07d}value,SN{i:07d}\n")
        source = work / "migration.csv.age"
        source.write_bytes(pyrage.encrypt(text.getvalue().encode(), [key.to_public()]))
        identity = work / "migration.key"
        identity.write_text(f"{key}\n")
        identity.chmod(0o600)
        out = work / "migrated.csv.age"
        started = time.time()
        proc = subprocess.run(
            [sys.executable, "-m", "provisioner", "import", str(source), "--identity",
             str(identity), "--product-key", pk, "--out", str(out), "--recipient",
             str(key.to_public()), "--log-format", "json"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False,
        )  # fmt: skip
        wall = time.time() - started
        if proc.returncode != 0:
            raise SystemExit(f"the import failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        report = json.loads(Path(f"{out}.report.json").read_text())
        stats = emu.stats()
    stage = float(report["durations_s"]["import"])
    return {
        "devices": report["counts"]["created"],
        "wall_s": wall,
        "stage_s": stage,
        "rate": DEVICES / stage,
        "share": DEVICES / stage / LIMIT,
        "throttled": stats["throttled"],
    }


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="provisioner-bench-") as tmp:
        r = measure(Path(tmp))
    print(f"import, {DEVICES:,} devices, ImportDevice at 50 QPS, --latency-ms 100")
    print(f"  wall time (process)       {r['wall_s']:8.2f} s")
    print(f"  import stage              {r['stage_s']:8.2f} s")
    print(
        f"  devices/s                 {r['rate']:8.1f}   ({r['share']:.1%} of 50/s, target >= 90%)"
    )
    print(f"  throttled responses       {r['throttled']:8d}   (target 0)")
    print()
    ok = r["devices"] == DEVICES and r["share"] >= 0.9 and r["throttled"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
