"""No file a command writes may be a file it reads, however the path is spelled."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner.errors import UsageError
from provisioner.paths import refuse_overlaps, same_file

_SPELLINGS = [
    *("absolute", "relative", "dot", "dotdot", "double"),
    *("symlink", "dir_symlink", "hardlink"),
]


def _spell(base: Path, target: Path, how: str) -> Path:
    """Another name for ``target`` (which lives in ``base/data``)."""
    if how == "absolute":
        return target.absolute()
    if how == "relative":
        return Path(os.path.relpath(target, Path.cwd()))
    if how == "dot":
        return target.parent / "." / target.name
    if how == "dotdot":
        return target.parent / ".." / target.parent.name / target.name
    if how == "double":
        return Path(str(target.parent) + "//" + target.name)
    if how == "symlink":
        link = base / f"link-{target.name}"
        if not link.exists():
            link.symlink_to(target)
        return link
    if how == "dir_symlink":
        link = base / "linked-dir"
        if not link.exists():
            link.symlink_to(target.parent, target_is_directory=True)
        return link / target.name
    link = base / f"hard-{target.name}"  # hardlink
    if not link.exists():
        os.link(target, link)
    return link


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(how=st.sampled_from(_SPELLINGS))
def test_every_spelling_of_the_input_is_refused(tmp_path: Path, how: str) -> None:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    source = data / "devices.csv"
    source.write_text("DeviceName\nabcd\n")
    out = _spell(tmp_path, source, how)
    with pytest.raises(UsageError, match=r"--out .* is the same file as the input"):
        refuse_overlaps({"--out": out}, {"the input": source})
    assert source.read_text() == "DeviceName\nabcd\n"


@given(name=st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=12))
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_distinct_files_pass(tmp_path: Path, name: str) -> None:
    source = tmp_path / "in.csv"
    source.write_text("x")
    refuse_overlaps({"--out": tmp_path / f"{name}.age"}, {"the input": source})


def test_written_files_may_not_collide_with_each_other(tmp_path: Path) -> None:
    out = tmp_path / "o"
    with pytest.raises(UsageError, match="the journal"):
        refuse_overlaps({"--out": out, "the journal": tmp_path / "." / "o"})


def test_same_file_of_missing_paths_compares_where_they_lead(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "l").symlink_to(tmp_path / "d", target_is_directory=True)
    assert same_file(tmp_path / "l" / "new", tmp_path / "d" / "new")
    assert not same_file(tmp_path / "d" / "a", tmp_path / "d" / "b")
