"""Two factory lines on one AccessKey: two ``provisioner run`` processes at once against
the emulator with the real QPS limits. Each paces itself to the whole budget, so the
server throttles them; throttling slows a run, it never fails it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from socket_rig import assert_complete, assert_no_plaintext, decrypt, write_input


def _start(rig: Any, line: str, names: list[str]) -> tuple[subprocess.Popen[str], Path]:
    source = rig.tmp / f"{line}.csv"
    write_input(source, names)
    out = rig.tmp / f"{line}.csv.age"
    command = [
        sys.executable, "-m", "provisioner", "run", str(source),
        "--product-key", rig.product_key, "--out", str(out), "--recipient", rig.recipient,
        "--chunk-size", "500", "--log-format", "json",
    ]  # fmt: skip
    log = (rig.tmp / f"{line}.log").open("w", encoding="utf-8")
    proc = subprocess.Popen(command, env=rig.env(), stdout=log, stderr=log, text=True)
    return proc, out


@pytest.mark.slow
def test_two_runs_on_one_access_key_both_finish(rig_factory: Any) -> None:
    rig = rig_factory(check_seconds=0.2, create_seconds=0.3)
    lines = {
        "line-a": [f"LA-{i:06d}" for i in range(3_000)],
        "line-b": [f"LB-{i:06d}" for i in range(3_000)],
    }
    started = {line: _start(rig, line, names) for line, names in lines.items()}
    for line, (proc, _) in started.items():
        assert proc.wait(timeout=300) == 0, (rig.tmp / f"{line}.log").read_text()[-2000:]
    for line, (_, out) in started.items():
        assert_complete(decrypt(rig, out), lines[line], rig.product_key)
    product = rig.emulator.world.products[rig.product_key]
    assert len(product.devices) == 6_000  # each device exactly once on the server
    # The two lines did contend: the server throttled them, and neither failed.
    assert rig.emulator.stats()["throttled"] > 0
    assert_no_plaintext(rig)
