"""Progress reporting: log events on an injected clock, and the rich bars."""

from __future__ import annotations

import io

from rich.console import Console
from structlog.testing import capture_logs

from provisioner.pipeline.progress import LogProgress, NullProgress, RichProgress, make_progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_log_progress_events() -> None:
    clock = Clock()
    with capture_logs() as logs:
        progress = LogProgress(interval=5.0, clock=clock)
        progress.set_total("checked", 10)
        progress.advance("checked", 4)
        clock.now += 1
        progress.advance("checked", 6)
        clock.now += 5
        progress.set_total("exported", 3)
        progress.advance("exported", 1)
        progress.advance("exported", 0)
        progress.close()
    events = [(e["event"], e.get("stage")) for e in logs]
    assert events == [
        ("run.stage_started", "checked"),
        ("run.stage_finished", "checked"),
        ("run.stage_started", "exported"),
        ("run.progress", None),
        ("run.progress", None),
    ]
    periodic = logs[3]
    assert periodic["checked"] == 10
    assert periodic["checked_total"] == 10
    assert periodic["exported"] == 1
    assert periodic["elapsed_s"] == 6.0
    assert logs[1]["elapsed_s"] == 1.0


def test_rich_progress_draws_every_stage() -> None:
    out = io.StringIO()
    progress = RichProgress(console=Console(file=out, force_terminal=True, width=120))
    for stage in ("validated", "checked", "created", "exported"):
        progress.set_total(stage, 5)
        progress.advance(stage, 5)
    progress.close()
    text = out.getvalue()
    for stage in ("validated", "checked", "created", "exported"):
        assert stage in text
    assert "5/5" in text


def test_make_progress_picks_by_mode() -> None:
    assert isinstance(make_progress("none"), NullProgress)
    assert isinstance(make_progress("auto", stream=io.StringIO()), LogProgress)
    assert isinstance(make_progress("log"), LogProgress)
    rich = make_progress("rich", stream=io.StringIO())
    assert isinstance(rich, RichProgress)
    rich.close()
