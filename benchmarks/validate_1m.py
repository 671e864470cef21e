"""Benchmark: read and validate a 1,000,000-row device list with ``read_devices``.

The CSV (about 1% invalid rows and some duplicates) is generated outside the timed part.
Each measurement runs in a fresh interpreter so that its peak RSS is its own: the parent
reads ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` after the children exit. The time is the
wall time of ``read_devices`` alone (imports excluded); the RSS covers the whole child,
interpreter and polars included.

Targets on the project's 2-core machine: < 3 s and < 500 MB. ``main()`` returns 1 when a
target is missed, so ``python benchmarks/validate_1m.py`` can gate a CI step.
"""

from __future__ import annotations

import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["ROWS", "generate", "main", "measure_once"]

ROWS = 1_000_000
RUNS = 3
TARGET_SECONDS = 3.0
TARGET_RSS_MB = 500.0
_SEED = 20_241_122

_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
_BAD_NAMES = ("ab", "dev ice-0001", "x" * 40, "sensor#0001", "温度计-0001", "")
_BAD_NICKS = ("no-hyphens", "ab", "   ", "温" * 40, "with space")


def generate(path: Path, rows: int = ROWS, *, seed: int = _SEED) -> dict[str, int]:
    """Write a device list of ``rows`` data rows; return the counts it was built with."""
    rng = random.Random(seed)
    bad = dup = 0
    seen: list[str] = []
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write("DeviceName,Nickname,Batch\n")
        for i in range(rows):
            roll = rng.random()
            nick = f"line{i % 9}_sensor_{i:07d}" if i % 2 else ""
            if roll < 0.005:
                name, bad = rng.choice(_BAD_NAMES), bad + 1
                nick = nick or "orphan_nick"  # an empty name: a rejected row either way
            elif roll < 0.01:
                name, bad = f"SN-{i:09d}", bad + 1
                nick = rng.choice(_BAD_NICKS)
            elif roll < 0.011 and seen:
                name, dup = rng.choice(seen), dup + 1
            else:
                tag = "".join(rng.choices(_ALNUM, k=4))
                name = f"SN-{tag}-{i:07d}" if i % 3 else f"gw_{i:07d}:{i % 100:02d}"
                if i % 1000 == 0:
                    seen.append(name)
            fh.write(f'{name},{nick},"batch {i // 10_000}"\n')
    return {"rows": rows, "bad": bad, "duplicates": dup}


def measure_once(path: Path) -> dict[str, float | int]:
    """Run ``read_devices`` on ``path`` in this process (the child side of the benchmark)."""
    t0 = time.perf_counter()
    from provisioner.inputs import fingerprint, read_devices

    t1 = time.perf_counter()
    table = read_devices(path)
    t2 = time.perf_counter()
    fingerprint(table.valid)
    t3 = time.perf_counter()
    return {
        "import_s": t1 - t0,
        "read_s": t2 - t1,
        "fingerprint_s": t3 - t2,
        "total": table.total,
        "valid": table.valid.height,
        "rejected": table.rejected.height,
    }


def _child(path: Path) -> int:
    # Logging is not configured in the child; keep stdout for the result line only.
    import structlog

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    print(json.dumps(measure_once(path)))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "--child":
        return _child(Path(args[1]))
    with tempfile.TemporaryDirectory(prefix="validate_1m_") as tmp:
        path = Path(tmp) / "devices.csv"
        t0 = time.perf_counter()
        built = generate(path)
        gen_s = time.perf_counter() - t0
        results = []
        for _ in range(RUNS):
            proc = subprocess.run(
                [sys.executable, __file__, "--child", str(path)],
                check=True,
                capture_output=True,
                text=True,
            )
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        size_mb = path.stat().st_size / 1e6
    # Linux reports ru_maxrss in KiB: the largest of the children.
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e6
    reads = [float(r["read_s"]) for r in results]
    worst = max(reads)
    first = results[0]
    rows = [
        ("input", f"{ROWS:,} rows, {size_mb:.0f} MB CSV (generated in {gen_s:.1f} s)"),
        ("built with", f"{built['bad']:,} bad rows, {built['duplicates']:,} duplicates"),
        ("result", f"{first['valid']:,} valid, {first['rejected']:,} rejected"),
        ("read_devices", f"median {statistics.median(reads):.2f} s, worst {worst:.2f} s"),
        ("fingerprint", f"{float(first['fingerprint_s']):.2f} s (not in the target)"),
        ("import", f"{float(first['import_s']):.2f} s (not in the target)"),
        ("peak RSS", f"{rss_mb:.0f} MB (read + fingerprint; largest of {RUNS} processes)"),
    ]
    ok_time, ok_rss = worst < TARGET_SECONDS, rss_mb < TARGET_RSS_MB
    rows.append(("target time", f"< {TARGET_SECONDS:.0f} s: {'ok' if ok_time else 'MISSED'}"))
    rows.append(("target RSS", f"< {TARGET_RSS_MB:.0f} MB: {'ok' if ok_rss else 'MISSED'}"))
    width = max(len(k) for k, _ in rows)
    print("validate_1m")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    return 0 if ok_time and ok_rss else 1


if __name__ == "__main__":
    sys.exit(main())
