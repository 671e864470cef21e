"""The encrypting thread of a streaming writer and the queue-fed file objects it uses.

``pyrage.encrypt_io`` pulls plaintext from a file-like reader and pushes ciphertext to a
file-like writer. Here the reader is fed by a :class:`queue.SimpleQueue` of encoded
batches (so the producer, possibly an event loop, never blocks) and the writer is the
temporary output file. The state lives in :class:`Pipe`, which holds no reference to the
owning writer object, so an abandoned writer can be garbage-collected and cleaned up.
"""

from __future__ import annotations

import contextlib
import io
import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import pyrage

from provisioner.output._atomic import discard

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = ["EOF", "FileSink", "Pipe", "QueueReader", "Stopped", "encrypt_thread"]

#: Put on the queue to end the stream (or to wake the thread when stopping).
EOF = None


class Stopped(Exception):
    """Raised inside pyrage's read to end the encryption of an aborted writer."""


class Pipe:
    """State shared by a writer, its encrypting thread and its finalizer.

    It holds no reference to the :class:`CredentialWriter`, so an abandoned writer can be
    garbage-collected and its finalizer can clean up.
    """

    def __init__(self, temp: Path, file: BinaryIO) -> None:
        self.temp = temp
        self.file = file
        self.queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.stop = threading.Event()
        self.error: Exception | None = None
        self.sink_error: OSError | None = None
        self.thread: threading.Thread | None = None
        self.thread_done = False
        # Reentrant: a finalizer may run from garbage collection inside the thread itself.
        self.lock = threading.RLock()

    def close_file(self) -> None:
        with self.lock:
            if not self.file.closed:
                # The file is being discarded: a failed flush does not matter.
                with contextlib.suppress(OSError):
                    self.file.close()

    def thread_finished(self) -> None:
        with self.lock:
            self.thread_done = True
            if self.stop.is_set():
                self.close_file()

    def abandon(self) -> None:
        """Stop the thread, close and delete the temporary file. Never blocks; idempotent."""
        with self.lock:
            self.stop.set()
            # While the thread runs it owns the file: closing it under its feet could
            # let a reused descriptor number receive its writes. It closes it on exit.
            if self.thread is None or self.thread_done:
                self.close_file()
        self.queue.put(EOF)
        discard(self.temp)


class QueueReader(io.RawIOBase):
    """The plaintext side of ``pyrage.encrypt_io``: bytes from the writer's queue."""

    def __init__(self, pipe: Pipe) -> None:
        super().__init__()
        self._pipe = pipe
        self._chunk = memoryview(b"")
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        while not self._chunk:
            if self._eof:
                return 0
            item = self._pipe.queue.get()
            if self._pipe.stop.is_set():
                raise Stopped
            if item is None:
                self._eof = True
                return 0
            self._chunk = memoryview(item)
        view = memoryview(buffer).cast("B")
        size = min(len(view), len(self._chunk))
        view[:size] = self._chunk[:size]
        self._chunk = self._chunk[size:]
        return size


class FileSink(io.RawIOBase):
    """The ciphertext side: the temporary file, remembering the OSError that pyrage hides."""

    def __init__(self, pipe: Pipe) -> None:
        super().__init__()
        self._pipe = pipe

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        if self._pipe.stop.is_set():
            raise Stopped
        try:
            return self._pipe.file.write(data)
        except OSError as exc:
            self._pipe.sink_error = exc
            raise


def encrypt_thread(pipe: Pipe, recipients: list[object]) -> None:
    """Thread body: encrypt the queue's bytes into the file until EOF, an error or a stop."""
    try:
        pyrage.encrypt_io(QueueReader(pipe), FileSink(pipe), recipients)
    except Exception as exc:
        # Kept for write()/commit() to raise in the caller's thread; after an abort
        # the error is only the Stopped that ended the encryption.
        if not pipe.stop.is_set():
            pipe.error = exc
    finally:
        pipe.thread_finished()
