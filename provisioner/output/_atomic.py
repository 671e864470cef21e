"""Atomic, private file creation shared by the output writers.

A file is written under a hidden temporary name in the directory of its final path
(``.<name>.<16 hex>.partial``, created ``O_EXCL`` with mode 0600), flushed, fsynced and
then renamed over the final name, and the directory is fsynced so the rename survives a
power cut. Nothing appears under the final name before the content is complete, and
the temporary file is private from its first byte, not chmod-ed afterwards.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import structlog

from provisioner.errors import OutputError

__all__ = [
    "PRIVATE_MODE",
    "atomic_file",
    "check_target",
    "create_partial",
    "discard",
    "fsync_directory",
    "is_partial_of",
    "os_error",
    "publish",
    "write_bytes_atomic",
]

_log = structlog.get_logger("provisioner.output")

PRIVATE_MODE = 0o600
_TOKEN_HEX = 16


def _partial_name(final: Path) -> str:
    return f".{final.name}.{secrets.token_hex(_TOKEN_HEX // 2)}.partial"


def is_partial_of(final: Path, candidate: str) -> bool:
    """Whether the file name ``candidate`` is a temporary file of ``final`` made here."""
    pattern = rf"\.{re.escape(final.name)}\.[0-9a-f]{{{_TOKEN_HEX}}}\.partial"
    return re.fullmatch(pattern, candidate) is not None


def os_error(final: Path, exc: OSError) -> OutputError:
    """Translate an OSError met while writing ``final`` into a one-line OutputError."""
    if exc.errno == errno.ENOSPC:
        return OutputError(f"cannot write {final}: no space left on device; free space and re-run")
    if exc.errno == errno.EDQUOT:
        return OutputError(f"cannot write {final}: disk quota exceeded; free space and re-run")
    return OutputError(f"cannot write {final}: {exc.strerror or exc}")


def check_target(final: Path, *, force: bool) -> None:
    """Refuse a final path that exists (unless ``force``) or is a directory."""
    if final.is_dir():
        raise OutputError(f"{final} is a directory; choose a file name with --out")
    # lexists: a dangling symlink is something the operator did not ask to replace either.
    if not force and os.path.lexists(final):
        raise OutputError(f"{final} exists; pass --force to replace it or choose another --out")


def create_partial(final: Path, mode: int = PRIVATE_MODE) -> tuple[Path, BinaryIO]:
    """Create the temporary file of ``final``; return its path and a buffered binary file."""
    directory = final.parent
    temp = directory / _partial_name(final)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(temp, flags, mode)
    except FileNotFoundError as exc:
        raise OutputError(
            f"directory {directory} does not exist; create it or choose another --out"
        ) from exc
    except OSError as exc:
        raise OutputError(
            f"cannot create a file in {directory}: {exc.strerror}; choose another --out"
        ) from exc
    try:
        # The umask may only have removed bits, but a shared umask could be odd: be exact.
        os.fchmod(fd, mode)
        return temp, os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        discard(temp)
        raise


def discard(temp: Path) -> None:
    """Delete a temporary file; a missing file is fine (abort is idempotent)."""
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()


def fsync_directory(directory: Path) -> None:
    """fsync a directory so a rename in it is durable; failures are logged, not raised.

    By the time this runs the rename has happened, so raising would report a failure
    for a file that is in place; the operator is better served by a warning.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        _log.warning("output.dir_fsync_failed", directory=str(directory), error=exc.strerror)
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            _log.warning("output.dir_fsync_failed", directory=str(directory), error=exc.strerror)
    finally:
        os.close(fd)


def publish(
    temp: Path, file: BinaryIO, final: Path, *, force: bool, mode: int = PRIVATE_MODE
) -> None:
    """Flush, fsync and close ``file``, then rename ``temp`` to ``final`` and make it durable.

    On failure the temporary file is removed and :class:`OutputError` raised.
    """
    try:
        try:
            file.flush()
            os.fsync(file.fileno())
        finally:
            file.close()
        if not force and os.path.lexists(final):
            # Something created the final path since the run started. Deleting the
            # complete output would lose work, so keep it under a visible unique name.
            # (A window remains between this check and the rename: os.replace cannot
            # refuse to clobber.)
            rescue = final.with_name(f"{final.name}.{secrets.token_hex(4)}")
            os.replace(temp, rescue)
            raise OutputError(
                f"{final} appeared while it was being written and was not replaced; "
                f"the complete output is in {rescue}: rename it yourself"
            )
        os.replace(temp, final)
    except OSError as exc:
        discard(temp)
        raise os_error(final, exc) from exc
    fsync_directory(final.parent)
    with contextlib.suppress(OSError):
        os.chmod(final, mode)


@contextlib.contextmanager
def atomic_file(final: Path, *, force: bool, mode: int = PRIVATE_MODE) -> Iterator[BinaryIO]:
    """Context manager: a private temporary file, published to ``final`` if the block succeeds.

    If the block raises, the temporary file is deleted and the final path is untouched.
    """
    check_target(final, force=force)
    temp, file = create_partial(final, mode)
    try:
        yield file
    except BaseException:
        file.close()
        discard(temp)
        raise
    publish(temp, file, final, force=force, mode=mode)


def write_bytes_atomic(final: Path, data: bytes, *, force: bool, mode: int = PRIVATE_MODE) -> None:
    """Write ``data`` to ``final`` atomically with ``mode``; see :func:`atomic_file`."""
    with atomic_file(final, force=force, mode=mode) as file:
        try:
            file.write(data)
        except OSError as exc:
            raise os_error(final, exc) from exc
