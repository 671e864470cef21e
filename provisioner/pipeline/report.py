"""The run report (``PATH.report.json``): counts, ApplyIds, timings, retries. No secrets.

Built from the journal's device counts and the pipeline's own measures, as plain
JSON-ready data. Nothing in it comes from a page of credentials.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "REPORT_VERSION",
    "Counts",
    "StageClock",
    "build_report",
    "merge_retry_stats",
    "rejects_path",
]

REPORT_VERSION = 1


def rejects_path(out: Path) -> Path:
    """Where the rows that were not provisioned go: ``<out>.rejects.csv``."""
    return out.with_name(f"{out.name}.rejects.csv")


@dataclass(frozen=True, slots=True)
class Counts:
    """Device counts of a run.

    ``input``: data rows read; ``rejected``: rows refused, by local validation or by
    the server's check; ``submitted``: valid rows sent to the API; ``created``:
    devices created by this run; ``adopted``: existing devices exported instead
    (``--existing adopt``); ``exported``: rows in the output; ``failed``: devices whose
    creation failed twice.
    """

    input: int = 0
    rejected: int = 0
    submitted: int = 0
    created: int = 0
    exported: int = 0
    adopted: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "input": self.input,
            "rejected": self.rejected,
            "submitted": self.submitted,
            "created": self.created,
            "exported": self.exported,
            "adopted": self.adopted,
            "failed": self.failed,
        }


@dataclass(slots=True)
class StageClock:
    """First start and last end of each stage, on an injected monotonic clock."""

    clock: Callable[[], float] = time.monotonic
    starts: dict[str, float] = field(default_factory=dict)
    ends: dict[str, float] = field(default_factory=dict)

    def start(self, stage: str) -> None:
        self.starts.setdefault(stage, self.clock())

    def end(self, stage: str) -> None:
        self.starts.setdefault(stage, self.clock())
        self.ends[stage] = self.clock()

    def durations(self) -> dict[str, float]:
        """Seconds from each stage's first start to its last end (stages overlap)."""
        return {
            stage: round(self.ends.get(stage, self.clock()) - start, 3)
            for stage, start in self.starts.items()
        }


def merge_retry_stats(snapshots: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Sum the ``RetryStats.snapshot()`` of several clients into one."""
    total: dict[str, Any] = {"calls": 0, "retries": 0, "throttled": 0, "gave_up": 0}
    by_code: Counter[str] = Counter()
    for snap in snapshots:
        for key in ("calls", "retries", "throttled", "gave_up"):
            total[key] += int(snap.get(key, 0))
        by_code.update({str(k): int(v) for k, v in dict(snap.get("by_code", {})).items()})
    total["by_code"] = dict(sorted(by_code.items()))
    return total


def build_report(
    *,
    run_id: str,
    product_key: str,
    exit_code: int,
    counts: Counts,
    apply_ids: Sequence[str],
    durations: Mapping[str, float],
    retries: Mapping[str, Any],
    out: Path,
    report: Path,
    rejects: Path | None,
    fmt: str,
    resumed: bool,
    iot_instance_id: str | None = None,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """The report as JSON-ready data (only identifiers, counts and timings)."""
    return {
        "version": REPORT_VERSION,
        "run_id": run_id,
        "product_key": product_key,
        "iot_instance_id": iot_instance_id,
        "endpoint": endpoint,
        "exit_code": exit_code,
        "complete": counts.rejected == 0 and counts.failed == 0,
        "counts": counts.as_dict(),
        "apply_ids": list(apply_ids),
        "durations_s": dict(durations),
        "retries": int(retries.get("retries", 0)),
        "throttled": int(retries.get("throttled", 0)),
        "api": dict(retries),
        "resumed": resumed,
        "format": fmt,
        "paths": {
            "out": str(out),
            "report": str(report),
            "rejects": str(rejects) if rejects is not None else None,
        },
    }
