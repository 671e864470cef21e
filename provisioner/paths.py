"""No file a command writes may be a file it reads: the guard, checked before any call.

A run reads its input (and an identity or recipients file) and writes its output, the
report and the rejects file beside it, and the journal. Typing ``--out devices.csv``
for the input, or a path that reaches the input through a symbolic link, a hard link,
``..`` or a relative spelling, would destroy the input after devices were created;
the journal written over an output (or the reverse) would lose the state of the run.
:func:`refuse_overlaps` compares every written path with every other path by file
identity (device and inode) when both exist, else by their resolved spellings, and
raises :class:`~provisioner.errors.UsageError` naming the two options.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from provisioner.errors import UsageError

__all__ = ["refuse_overlaps", "same_file"]


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file (or would, once created)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        pass
    # One of them does not exist (yet): compare where the spellings lead.
    return os.path.realpath(a) == os.path.realpath(b)


def refuse_overlaps(
    writes: Mapping[str, Path | None], reads: Mapping[str, Path | None] | None = None
) -> None:
    """:class:`UsageError` if a written path is a read path or another written path.

    Keys are what the operator typed to name the path (``--out``, ``the input``...),
    so the message says which two collide.
    """
    written = [(label, path) for label, path in writes.items() if path is not None]
    others = [(label, path) for label, path in (reads or {}).items() if path is not None]
    for i, (label, path) in enumerate(written):
        for other_label, other in [*others, *written[i + 1 :]]:
            if same_file(path, other):
                raise UsageError(
                    f"{label} ({path}) is the same file as {other_label} ({other}); "
                    f"writing it would destroy {other_label}: choose another {label}"
                )
