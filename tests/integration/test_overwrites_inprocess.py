"""A run never writes over a file it reads (input, identity, journal), even with --force."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from inprocess_rig import make_world, names

from provisioner.errors import UsageError
from provisioner.pipeline import status

pytestmark = pytest.mark.usefixtures("no_retry_waits")


@pytest.mark.parametrize(
    "target",
    ["input", "input-symlink", "input-hardlink", "rejects-is-input", "report-is-input", "journal"],
)
def test_run_refuses_to_overwrite_what_it_reads(tmp_path: Path, target: str) -> None:
    world = make_world(tmp_path)
    source = world.write_input(names(40))
    if target == "rejects-is-input":
        source = source.rename(tmp_path / "o.csv.age.rejects.csv")
    if target == "report-is-input":
        source = source.rename(tmp_path / "o.csv.age.report.json.csv")
    original = source.read_bytes()
    settings = world.settings(source, force=True)
    out = {
        "input": source,
        "input-symlink": tmp_path / "alias.csv",
        "input-hardlink": tmp_path / "hard.csv",
        "rejects-is-input": tmp_path / "o.csv.age",
        "report-is-input": tmp_path / "o.csv.age.report.json.csv",
        "journal": Path(str(settings.journal)),
    }[target]
    if target == "input-symlink":
        out.symlink_to(source)
    if target == "input-hardlink":
        os.link(source, out)
    if target == "report-is-input":
        # out.report.json would be this input only if the input were named so.
        out = tmp_path / "o.csv.age"
        source.rename(tmp_path / "o.csv.age.report.json")
        source = tmp_path / "o.csv.age.report.json"
        settings = replace(settings, input=source)
    with pytest.raises(UsageError, match="is the same file as"):
        world.run(replace(settings, out=out))
    assert sum(world.recorder.counts.values()) == 1  # only the product created by the rig
    assert source.read_bytes() == original
    assert status(settings.journal) == []
