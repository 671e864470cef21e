"""``provisioner status``: the runs of a journal, or one run with its applications."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from provisioner import wiring
from provisioner.journal import AppRecord, RunRecord, resolve_journal_path

__all__ = ["RunStatusView", "status"]


@dataclass(frozen=True, slots=True)
class RunStatusView:
    """A run as ``provisioner status`` shows it."""

    run: RunRecord
    devices: Mapping[str, int]
    applications: Sequence[AppRecord]


def status(journal: str | Path | None = None, run_id: str | None = None) -> list[RunStatusView]:
    """Every run of the journal (``run_id=None``), or one run with its applications."""
    location = str(journal) if isinstance(journal, Path) else journal
    # Listing the runs of a journal file that does not exist yet creates nothing.
    is_file = "://" not in (location or "") or (location or "").startswith("sqlite:")
    if run_id is None and is_file and not resolve_journal_path(location).exists():
        return []
    store = wiring.open_journal(location)
    try:
        runs = [store.get_run(run_id)] if run_id is not None else store.list_runs()
        return [
            RunStatusView(
                run=run,
                devices=store.device_counts(run.run_id),
                applications=store.applications(run.run_id) if run_id is not None else (),
            )
            for run in runs
        ]
    finally:
        store.close()
