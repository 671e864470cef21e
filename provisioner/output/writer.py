"""Stream device credentials into an age-encrypted file, never touching the disk in plaintext.

:class:`CredentialWriter` writes rows of credentials (ProductKey, DeviceName, DeviceSecret,
IotId, Nickname, ApplyId) as CSV, JSON Lines or Parquet, encrypted with age. The file is
created as a hidden temporary file beside the final path (mode 0600, ``O_EXCL``) and
renamed over the final path only by :meth:`CredentialWriter.commit`; an abort, a crash or
a writer dropped without commit leaves nothing under the final name.

What is held in memory depends on the mode:

* CSV / JSONL with recipients: streamed. :meth:`~CredentialWriter.write` encodes a batch
  and puts the bytes on a queue; a thread runs ``pyrage.encrypt_io`` reading from that
  queue, so ciphertext reaches the temporary file as rows arrive (64 KiB age chunks).
  Only the batches the thread has not yet encrypted are in memory.
* Parquet (any encryption): Parquet is written at once at the end, so each batch is kept
  as a small in-memory polars frame; at commit they are concatenated, written to an
  in-memory Parquet buffer and encrypted from there.
* Passphrase (any format): ``pyrage.passphrase`` has no streaming API, so the encoded
  plaintext is kept in memory and encrypted in one call at commit.

In every mode plaintext exists only in process memory; the temporary file only ever
receives ciphertext.
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, get_args

import polars as pl
import pyrage
import structlog

from provisioner.errors import OutputError, UsageError
from provisioner.output._atomic import (
    check_target,
    create_partial,
    is_partial_of,
    os_error,
    publish,
)
from provisioner.output._pipe import EOF, FileSink, Pipe, encrypt_thread
from provisioner.output.encryption import Encryption

__all__ = [
    "IMPORT_COLUMNS",
    "OUTPUT_COLUMNS",
    "OUTPUT_FORMATS",
    "CredentialWriter",
    "OutputFormat",
    "remove_stale_partials",
]

OUTPUT_COLUMNS: tuple[str, ...] = (
    "ProductKey",
    "DeviceName",
    "DeviceSecret",
    "IotId",
    "Nickname",
    "ApplyId",
)
#: The columns of an import's output: the credentials and the device's serial number.
IMPORT_COLUMNS: tuple[str, ...] = (*OUTPUT_COLUMNS, "Sn")
OutputFormat = Literal["csv", "jsonl", "parquet"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)

_log = structlog.get_logger("provisioner.output")

# How long abort() waits for the encrypting thread; it only has to notice the stop flag,
# unless a write to a hung filesystem blocks it (then the daemon thread is left behind).
_JOIN_TIMEOUT_S = 10.0


def _encode_csv(rows: Sequence[Sequence[str]]) -> bytes:
    buffer = io.StringIO()
    plain = csv.writer(buffer, lineterminator="\n")
    # The csv module only quotes characters of its lineterminator, so with "\n" a bare
    # "\r" would go out unquoted; RFC 4180 wants it quoted. Such rows are rare: quote all.
    if any(isinstance(value, str) and "\r" in value for row in rows for value in row):
        quoted = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
        for row in rows:
            has_cr = any(isinstance(value, str) and "\r" in value for value in row)
            (quoted if has_cr else plain).writerow(row)
    else:
        plain.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _encode_jsonl(rows: Sequence[Sequence[str]], columns: Sequence[str]) -> bytes:
    lines = [
        json.dumps(dict(zip(columns, row, strict=True)), ensure_ascii=False, separators=(",", ":"))
        for row in rows
    ]
    lines.append("")
    return "\n".join(lines).encode("utf-8")


def _check_columns(columns: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(columns)
    if not chosen:
        raise UsageError("choose at least one output column")
    for name in chosen:
        if name not in IMPORT_COLUMNS:
            raise UsageError(
                f"unknown output column {name!r}; choose from {', '.join(IMPORT_COLUMNS)}"
            )
    if len(set(chosen)) != len(chosen):
        raise UsageError("an output column is listed twice; list each column once")
    return chosen


class CredentialWriter:
    """Write credential rows to an encrypted file, atomically, with mode 0600.

    Use :meth:`open`, then :meth:`write` for each batch, then :meth:`commit`; or as a
    context manager, which opens on entry and aborts on exit unless committed.
    """

    def __init__(
        self,
        path: Path,
        encryption: Encryption,
        *,
        fmt: OutputFormat = "csv",
        columns: Sequence[str] = OUTPUT_COLUMNS,
        force: bool = False,
    ) -> None:
        if fmt not in OUTPUT_FORMATS:
            raise UsageError(f"unknown output format {fmt!r}; choose from csv, jsonl, parquet")
        self.path = Path(path)
        self.fmt: OutputFormat = fmt
        self.columns = _check_columns(columns)
        self._encryption = encryption
        self._force = force
        self._streaming = fmt != "parquet" and encryption.passphrase is None
        self._state: Literal["new", "open", "committed", "aborted"] = "new"
        self._pipe: Pipe | None = None
        self._finalizer: weakref.finalize[[], CredentialWriter] | None = None
        self._chunks: list[bytes] = []  # passphrase mode, csv/jsonl
        self._frames: list[pl.DataFrame] = []  # parquet
        self._rows = 0
        self._started = 0.0

    def __repr__(self) -> str:
        return (
            f"CredentialWriter(path={str(self.path)!r}, fmt={self.fmt!r}, "
            f"encryption={self._encryption.kind!r}, state={self._state!r}, rows={self._rows})"
        )

    @property
    def rows_written(self) -> int:
        """Rows accepted by :meth:`write` so far (all of them are in the file after commit)."""
        return self._rows

    @property
    def temp_path(self) -> Path | None:
        """The hidden temporary file while the writer is open, else ``None``."""
        return self._pipe.temp if self._pipe is not None and self._state == "open" else None

    def open(self) -> None:
        """Refuse an existing final path (unless ``force``), create the temporary file and,
        when streaming, start the encrypting thread."""
        if self._state != "new":
            raise RuntimeError(f"CredentialWriter.open() called in state {self._state}")
        check_target(self.path, force=self._force)
        temp, file = create_partial(self.path)
        pipe = Pipe(temp, file)
        self._pipe = pipe
        # Runs at garbage collection or interpreter exit if neither commit nor abort did:
        # the temporary file is removed and nothing was ever under the final name.
        self._finalizer = weakref.finalize(self, pipe.abandon)
        self._state = "open"
        self._started = time.monotonic()
        if self._streaming:
            pipe.thread = threading.Thread(
                target=encrypt_thread,
                args=(pipe, list(self._encryption.recipients)),
                name="provisioner-output-encrypt",
                daemon=True,  # A forgotten writer must not keep the process alive.
            )
            pipe.thread.start()
        if self.fmt == "csv":
            self._enqueue(_encode_csv([self.columns]))
        _log.info(
            "output.opened",
            path=str(self.path),
            temp=str(temp),
            format=self.fmt,
            encryption=self._encryption.kind,
            streaming=self._streaming,
        )

    def write(self, rows: Sequence[Sequence[str]]) -> None:
        """Add rows (values in column order). Never blocks on the disk or on encryption."""
        pipe = self._require_open()
        self._raise_thread_error(pipe)
        width = len(self.columns)
        for index, row in enumerate(rows):
            if len(row) != width:
                # Position and counts only: the row itself may hold a DeviceSecret.
                raise ValueError(
                    f"row {index} of the batch has {len(row)} values; expected {width} "
                    f"({', '.join(self.columns)})"
                )
        if not rows:
            return
        try:
            if self.fmt == "parquet":
                self._frames.append(
                    pl.DataFrame(
                        [tuple(row) for row in rows],
                        schema=dict.fromkeys(self.columns, pl.String),
                        orient="row",
                    )
                )
            elif self.fmt == "csv":
                self._enqueue(_encode_csv(rows))
            else:
                self._enqueue(_encode_jsonl(rows, self.columns))
        except (UnicodeError, TypeError, ValueError, pl.exceptions.PolarsError):
            unencodable = True
        else:
            unencodable = False
        if unencodable:
            # Raised outside the except block so not even __context__ keeps the original:
            # UnicodeEncodeError holds the whole batch in .object, DeviceSecrets included.
            raise ValueError(
                "a row value is not encodable text (a non-string or a lone surrogate); "
                "values must be str"
            )
        self._rows += len(rows)

    def commit(self) -> Path:
        """Finish the file, rename it to the final path and return that path."""
        pipe = self._require_open()
        try:
            if self._streaming:
                pipe.queue.put(EOF)
                assert pipe.thread is not None
                pipe.thread.join()
                self._raise_thread_error(pipe)
            else:
                self._encrypt_buffered(pipe)
            publish(pipe.temp, pipe.file, self.path, force=self._force)
        except BaseException:
            self.abort()
            raise
        self._state = "committed"
        if self._finalizer is not None:
            self._finalizer.detach()
        _log.info(
            "output.committed",
            path=str(self.path),
            rows=self._rows,
            bytes=_size(self.path),
            format=self.fmt,
            encryption=self._encryption.kind,
            seconds=round(time.monotonic() - self._started, 3),
        )
        return self.path

    def abort(self) -> None:
        """Stop encrypting and delete the temporary file. Idempotent; no-op after commit."""
        if self._state in ("new", "committed", "aborted"):
            if self._state == "new":
                self._state = "aborted"
            return
        self._state = "aborted"
        pipe = self._pipe
        assert pipe is not None
        pipe.abandon()
        if pipe.thread is not None and pipe.thread is not threading.current_thread():
            pipe.thread.join(_JOIN_TIMEOUT_S)
        if self._finalizer is not None:
            self._finalizer.detach()
        self._chunks.clear()
        self._frames.clear()
        _log.info("output.aborted", path=str(self.path), rows=self._rows)

    def __enter__(self) -> CredentialWriter:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Commit is explicit: leaving the block without it, by an exception or not,
        # means the file is not complete, so nothing may appear under the final name.
        self.abort()

    def _require_open(self) -> Pipe:
        if self._state != "open" or self._pipe is None:
            raise RuntimeError(f"CredentialWriter is {self._state}, not open")
        return self._pipe

    def _enqueue(self, data: bytes) -> None:
        if self._streaming:
            assert self._pipe is not None
            self._pipe.queue.put(data)
        else:
            self._chunks.append(data)

    def _raise_thread_error(self, pipe: Pipe) -> None:
        error = pipe.error
        if error is None:
            return
        sink_error = pipe.sink_error
        self.abort()
        _log.error("output.failed", path=str(self.path), rows=self._rows, error=str(error))
        if sink_error is not None:
            raise os_error(self.path, sink_error) from error
        raise OutputError(f"encrypting {self.path} failed: {error}") from error

    def _plaintext(self) -> bytes:
        if self.fmt != "parquet":
            data = b"".join(self._chunks)
            self._chunks.clear()
            return data
        frame = (
            pl.concat(self._frames, rechunk=True)
            if self._frames
            else pl.DataFrame(schema=dict.fromkeys(self.columns, pl.String))
        )
        self._frames.clear()
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        return buffer.getvalue()

    def _encrypt_buffered(self, pipe: Pipe) -> None:
        plaintext = self._plaintext()
        try:
            if self._encryption.passphrase is not None:
                pipe.file.write(pyrage.passphrase.encrypt(plaintext, self._encryption.passphrase))
            else:
                pyrage.encrypt_io(
                    io.BytesIO(plaintext), FileSink(pipe), list(self._encryption.recipients)
                )
        except OSError as exc:
            raise os_error(self.path, exc) from exc
        except pyrage.EncryptError as exc:
            if pipe.sink_error is not None:
                raise os_error(self.path, pipe.sink_error) from exc
            raise OutputError(f"encrypting {self.path} failed: {exc}") from exc


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def remove_stale_partials(path: Path) -> int:
    """Delete the temporary files that crashed runs left beside ``path``; return how many.

    Only names this module creates (``.<name>.<16 hex>.partial``) are touched. Call it
    only while no other process is writing ``path`` (the run lock guarantees that).
    """
    final = Path(path)
    directory = final.parent
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise OutputError(f"cannot list {directory}: {exc.strerror}") from exc
    for entry in entries:
        if is_partial_of(final, entry.name) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise OutputError(
                    f"cannot remove stale {entry.path}: {exc.strerror}; delete it yourself"
                ) from exc
            removed += 1
    if removed:
        _log.info("output.stale_partials_removed", directory=str(directory), count=removed)
    return removed
