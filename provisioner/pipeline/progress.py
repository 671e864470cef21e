"""Progress of a run by stage: validated, checked, created, exported.

:class:`Progress` is what the pipeline calls; it never waits or does I/O itself. Two
implementations: :class:`RichProgress` draws one bar per stage with rate and ETA on a
terminal; :class:`LogProgress` emits structlog events for machines: one at each stage
transition (``run.stage_started`` / ``run.stage_finished``) and ``run.progress`` at
most every ``interval`` seconds of an injected clock, driven by the pipeline's own
updates (no timer task). :class:`NullProgress` stays silent.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Literal, Protocol, TextIO

import structlog
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as _RichBars
from rich.text import Text

__all__ = [
    "STAGES",
    "LogProgress",
    "NullProgress",
    "Progress",
    "RichProgress",
    "Stage",
    "make_progress",
]

Stage = Literal["validated", "checked", "created", "exported"]
STAGES: tuple[Stage, ...] = ("validated", "checked", "created", "exported")

logger = structlog.get_logger("provisioner.pipeline")


class Progress(Protocol):
    """What the pipeline reports; every method returns at once."""

    def set_total(self, stage: Stage, total: int) -> None: ...

    def advance(self, stage: Stage, n: int = 1) -> None: ...

    def close(self) -> None: ...


class NullProgress:
    """Reports nothing."""

    def set_total(self, stage: Stage, total: int) -> None:
        pass

    def advance(self, stage: Stage, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


class _Counts:
    def __init__(self) -> None:
        self.total: dict[Stage, int] = dict.fromkeys(STAGES, 0)
        self.done: dict[Stage, int] = dict.fromkeys(STAGES, 0)


class LogProgress:
    """Structlog events: stage transitions, and ``run.progress`` every ``interval`` s."""

    def __init__(self, *, interval: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self._interval = interval
        self._clock = clock
        self._counts = _Counts()
        self._started: set[Stage] = set()
        self._finished: set[Stage] = set()
        self._last = clock()
        self._t0 = self._last

    def set_total(self, stage: Stage, total: int) -> None:
        self._counts.total[stage] = total
        self._maybe_finish(stage)

    def advance(self, stage: Stage, n: int = 1) -> None:
        if n <= 0:
            return
        if stage not in self._started:
            self._started.add(stage)
            logger.info("run.stage_started", stage=stage, total=self._counts.total[stage])
        self._counts.done[stage] += n
        self._maybe_finish(stage)
        now = self._clock()
        if now - self._last >= self._interval:
            self._last = now
            self.emit()

    def _maybe_finish(self, stage: Stage) -> None:
        done, total = self._counts.done[stage], self._counts.total[stage]
        if stage in self._started and stage not in self._finished and done >= total > 0:
            self._finished.add(stage)
            logger.info(
                "run.stage_finished",
                stage=stage,
                count=done,
                elapsed_s=round(self._clock() - self._t0, 3),
            )

    def emit(self) -> None:
        """One ``run.progress`` event with every stage's count now."""
        elapsed = self._clock() - self._t0
        fields: dict[str, object] = {"elapsed_s": round(elapsed, 3)}
        for stage in STAGES:
            fields[stage] = self._counts.done[stage]
            fields[f"{stage}_total"] = self._counts.total[stage]
        exported = self._counts.done["exported"]
        fields["export_rate"] = round(exported / elapsed, 1) if elapsed > 0 else 0.0
        logger.info("run.progress", **fields)

    def close(self) -> None:
        self.emit()


class _RateColumn(ProgressColumn):
    """Items per second of a task."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- /s" if speed is None else f"{speed:,.0f} /s", style="progress.data.speed")


class RichProgress:
    """One rich bar per stage with count, rate and ETA (for a terminal)."""

    def __init__(self, *, console: Console | None = None) -> None:
        self._bars = _RichBars(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._tasks: Mapping[Stage, TaskID] = {
            stage: self._bars.add_task(stage, total=None) for stage in STAGES
        }
        self._bars.start()

    def set_total(self, stage: Stage, total: int) -> None:
        self._bars.update(self._tasks[stage], total=total)

    def advance(self, stage: Stage, n: int = 1) -> None:
        self._bars.advance(self._tasks[stage], n)

    def close(self) -> None:
        self._bars.stop()


def make_progress(
    mode: Literal["auto", "rich", "log", "none"],
    *,
    stream: TextIO | None = None,
    interval: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
) -> Progress:
    """The progress for ``mode``; ``auto`` is rich bars on a terminal, log events otherwise."""
    out = stream if stream is not None else sys.stderr
    if mode == "none":
        return NullProgress()
    if mode == "rich" or (mode == "auto" and out.isatty()):
        return RichProgress(console=Console(file=out))
    return LogProgress(interval=interval, clock=clock)
