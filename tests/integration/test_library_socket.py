"""The README's "From Python" example, run as a doctest against the emulator over a socket."""

from __future__ import annotations

import doctest
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from socket_rig import AK_ID, AK_SECRET, assert_never_throttled, assert_no_plaintext, decrypt

README = Path(__file__).parent.parent.parent / "README.md"
SAMPLE = Path(__file__).parent.parent.parent / "sample_data" / "devices.csv"


def _example() -> str:
    section = README.read_text(encoding="utf-8").split("## From Python", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the README lost its library example"
    return match.group(1)


def test_the_readme_library_example_runs(rig_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = rig_factory(check_seconds=0.2, create_seconds=0.3)
    shutil.copy(SAMPLE, rig.tmp / "devices.csv")
    monkeypatch.chdir(rig.tmp)
    for name, value in {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": AK_ID,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": AK_SECRET,
        "PROVISIONER_ENDPOINT": rig.url,
        "PROVISIONER_JOURNAL": str(rig.tmp / "journal.sqlite3"),
        "PRODUCT_KEY": rig.product_key,
        "RECIPIENT": rig.recipient,
    }.items():
        monkeypatch.setenv(name, value)
    test = doctest.DocTestParser().get_doctest(_example(), {}, "README", str(README), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0, "the README example's output differs (see the log above)"
    assert runner.tries >= 6
    rows = decrypt(rig, rig.tmp / "devices.csv.age")
    assert len(rows) == 3000
    assert os.stat(rig.tmp / "devices.csv.age").st_mode & 0o777 == 0o600
    assert_never_throttled(rig)
    assert_no_plaintext(rig)
