"""`make bench`: the pipeline against the emulator at the real QPS limits, and validate at 1M rows.

Part 1 starts `provisioner emulator --latency-ms 100` (real limits, CHECK 1 s, CREATE 2 s)
and runs `provisioner run` on 20,000 devices as separate processes. It reports the wall
time, the floor (pages / 50 QPS + the time to the first created application), their
ratio, devices/s, throttled responses and the run's peak RSS. Part 2 is
benchmarks/import_bench.py: `provisioner import` against the ImportDevice limit. Part 3 is
benchmarks/validate_1m.py: 1,000,000 rows through input validation.
Targets: floor/wall >= 0.9 with zero throttled responses; validate < 3 s, < 500 MB.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pyrage

sys.path.insert(0, str(Path(__file__).resolve().parent))
import import_bench
import validate_1m
from emulated import emulator

from provisioner.log import configure_logging

DEVICES = 20_000
PAGE = 50
PAGE_QPS = 50


def _pipeline(work: Path) -> dict[str, float]:
    with emulator(work) as emu:
        env, pk = emu.env, emu.product_key
        names = work / "devices.csv"
        with names.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["DeviceName"])
            writer.writerows([f"BENCH-{i:08d}"] for i in range(DEVICES))
        recipient = str(pyrage.x25519.Identity.generate().to_public())
        out = work / "creds.csv.age"
        started = time.time()
        proc = subprocess.run(
            [sys.executable, "-m", "provisioner", "run", str(names), "--product-key", pk,
             "--out", str(out), "--recipient", recipient, "--log-format", "json"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False,
        )  # fmt: skip
        wall = time.time() - started
        peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if proc.returncode != 0:
            raise SystemExit(f"the run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
        created = [e for e in events if e.get("event") == "run.chunk_created"]
        first_created = min(datetime.fromisoformat(e["timestamp"]).timestamp() for e in created)
        report = json.loads(Path(f"{out}.report.json").read_text())
        stats = emu.stats()
    chunk = 10_000
    pages = sum(math.ceil(min(chunk, DEVICES - s) / PAGE) for s in range(0, DEVICES, chunk))
    floor = pages / PAGE_QPS + (first_created - started)
    return {
        "devices": report["counts"]["exported"],
        "wall_s": wall,
        "first_created_s": first_created - started,
        "pages": pages,
        "floor_s": floor,
        "ratio": floor / wall,
        "devices_per_s": DEVICES / wall,
        "throttled": stats["throttled"],
        "retries": report.get("retries", 0),
        "peak_rss_mb": peak_rss_mb,
    }


def main() -> int:
    configure_logging(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="provisioner-bench-") as tmp:
        r = _pipeline(Path(tmp))
    print(f"pipeline, {DEVICES:,} devices, real QPS limits, --latency-ms 100")
    print(f"  wall time                 {r['wall_s']:8.2f} s")
    print(f"  first created application {r['first_created_s']:8.2f} s")
    print(f"  floor ({r['pages']} pages / 50 QPS + first) {r['floor_s']:8.2f} s")
    print(f"  ratio floor/wall          {r['ratio']:8.3f}   (target >= 0.9)")
    print(f"  devices/s                 {r['devices_per_s']:8.0f}")
    print(f"  throttled responses       {r['throttled']:8d}   (target 0)")
    print(f"  retries                   {r['retries']:8d}")
    print(f"  peak RSS of the run       {r['peak_rss_mb']:8.0f} MB")
    print()
    ok = r["ratio"] >= 0.9 and r["throttled"] == 0 and r["devices"] == DEVICES
    return (0 if ok else 1) | import_bench.main() | validate_1m.main()


if __name__ == "__main__":
    sys.exit(main())
