"""Where the journal lives, and whether a lease holder's process is still alive.

The journal is ``--journal`` (a path or ``sqlite:///path``), else
``PROVISIONER_JOURNAL``, else ``$XDG_STATE_HOME/provisioner/journal.sqlite3`` (with
``~/.local/state`` when ``XDG_STATE_HOME`` is unset). Other URL schemes are refused
until a store for them exists.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from provisioner.errors import UsageError

__all__ = ["ENV_JOURNAL", "default_journal_path", "pid_alive", "resolve_journal_path"]

ENV_JOURNAL = "PROVISIONER_JOURNAL"


def default_journal_path(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_STATE_HOME/provisioner/journal.sqlite3``, else under ``~/.local/state``."""
    state_home = env.get("XDG_STATE_HOME", "").strip()
    base = Path(state_home) if state_home else Path.home() / ".local" / "state"
    return base / "provisioner" / "journal.sqlite3"


def resolve_journal_path(location: str | None, env: Mapping[str, str] = os.environ) -> Path:
    """The journal file named by ``--journal``, else ``PROVISIONER_JOURNAL``, else the default.

    A plain path or ``sqlite:///path`` (``sqlite:////abs/path`` for an absolute one in
    the SQLAlchemy spelling, ``sqlite:///abs/path`` is read as absolute too).
    """
    text = (location if location is not None else env.get(ENV_JOURNAL, "")).strip()
    if not text:
        return default_journal_path(env)
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme.lower() != "sqlite":
            raise UsageError(
                f"journal scheme {scheme!r} is not supported: only sqlite journals are "
                "supported for now (a path or sqlite:///path)"
            )
        if not rest.startswith("/") or rest == "/":
            raise UsageError(f"malformed journal URL {text!r}: expected sqlite:///path")
        # sqlite:///relative/x and sqlite:////abs/x both name a file; keep one leading '/'.
        text = "/" + rest.lstrip("/")
    return Path(text).expanduser()


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:
        return False
    return True
