"""What to tell an operator whose command a signal stopped (Ctrl-C, SIGTERM).

A run notes the command that carries it on as soon as it exists in the journal; the
entry point (:mod:`provisioner.entry`) prints it in the one line it writes when
SIGINT or SIGTERM stops the process, after the run has released its lease (so the
note outlives the run on purpose). Process-wide on purpose: a signal is.
"""

from __future__ import annotations

__all__ = ["note_resume", "resume_hint"]

_hint: list[str] = []


def note_resume(command: str) -> None:
    """From now on, a stop is carried on by ``command``."""
    _hint[:] = [command]


def resume_hint() -> str | None:
    """The command that carries on the last run this process worked, if any."""
    return _hint[0] if _hint else None
