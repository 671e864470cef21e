"""Reading the encrypted output back, and making an age identity to encrypt it to.

:func:`decrypt_to` streams an output file through ``pyrage.decrypt_io`` when decrypting
with identities. Passphrase files are decrypted in memory (``pyrage.passphrase`` has no
streaming API), so the whole plaintext is held in memory then. Note that age streams
authenticate chunk by chunk: when writing to a pipe, output that precedes a damaged chunk
has already been written when the error is raised. Writing to a file through
:func:`provisioner.output._atomic.atomic_file` avoids that: a failure leaves no file.

With ``excel_safe=True`` (``provisioner decrypt --excel-safe``) the plaintext, which must
be CSV, is decrypted into memory and every cell goes through
:func:`provisioner.output.spreadsheet.excel_safe` (a cell starting with ``= + - @``, TAB or
CR gets a leading ``'``) before anything is written, so a spreadsheet opening the result
runs no formula. It is opt-in: valid DeviceNames may start with ``-`` or ``@``, and a
program reading the plaintext wants them unchanged.

:func:`generate_identity` writes an identity file in the format of ``age-keygen``, so the
standard ``age -d -i FILE`` can decrypt the output as well.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import pyrage

from provisioner.errors import InputError, UsageError
from provisioner.output._atomic import os_error, write_bytes_atomic
from provisioner.output.spreadsheet import excel_safe_csv

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["AGE_MAGIC", "decrypt_to", "generate_identity"]

AGE_MAGIC = b"age-encryption.org/v1\n"
# The recipient stanzas follow the magic line; 4 KiB covers any sane number of them.
_HEADER_PEEK = 4096
_SCRYPT_STANZA = b"\n-> scrypt "


class _Sink(io.RawIOBase):
    """Wraps ``out`` so an OSError (closed pipe, full disk) survives pyrage's wrapping."""

    def __init__(self, out: BinaryIO) -> None:
        super().__init__()
        self._out = out
        self.error: OSError | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        try:
            return self._out.write(data)
        except OSError as exc:
            self.error = exc
            raise


def _peek_header(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            head = file.read(_HEADER_PEEK)
    except FileNotFoundError as exc:
        raise InputError(f"{path} does not exist; check the path") from exc
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    if not head.startswith(AGE_MAGIC):
        raise InputError(f"{path} is not an age-encrypted file")
    return head


def decrypt_to(
    path: Path,
    out: BinaryIO,
    *,
    identities: Sequence[object] = (),
    passphrase: str | None = None,
    excel_safe: bool = False,
) -> None:
    """Decrypt the age file ``path`` into ``out`` with ``identities`` XOR ``passphrase``.

    ``excel_safe``: neutralise formula-like cells of a CSV plaintext (see above).
    Raises :class:`InputError` for a missing, foreign or damaged file, :class:`UsageError`
    for keys that do not fit (or ``excel_safe`` on a plaintext that is not CSV) and
    :class:`OutputError` if ``out`` cannot be written.
    """
    if not excel_safe:
        _decrypt(path, out, identities=identities, passphrase=passphrase)
        return
    plain = io.BytesIO()
    _decrypt(path, plain, identities=identities, passphrase=passphrase)
    safe = _excel_safe(path, plain.getvalue())
    try:
        out.write(safe)
        out.flush()
    except OSError as exc:
        name = getattr(out, "name", None)
        raise os_error(Path(name if isinstance(name, str) else "the output"), exc) from exc


def _excel_safe(path: Path, plain: bytes) -> bytes:
    if plain.startswith(b"PAR1"):
        raise UsageError(f"--excel-safe works on CSV; {path} holds Parquet: decrypt without it")
    if plain.lstrip()[:1] in (b"{", b"["):
        raise UsageError(f"--excel-safe works on CSV; {path} holds JSON: decrypt without it")
    try:
        return excel_safe_csv(plain)
    except ValueError:
        raise UsageError(
            f"--excel-safe works on CSV; {path} does not hold CSV text: decrypt without it"
        ) from None


def _decrypt(
    path: Path,
    out: BinaryIO,
    *,
    identities: Sequence[object],
    passphrase: str | None,
) -> None:
    if bool(identities) == (passphrase is not None):
        raise UsageError("decrypt needs --identity FILE or --passphrase-env VAR (one of them)")
    head = _peek_header(path)
    is_passphrase_file = _SCRYPT_STANZA in head
    if passphrase is not None and not is_passphrase_file:
        raise UsageError(f"{path} is encrypted to public keys, not a passphrase; pass --identity")
    if passphrase is None and is_passphrase_file:
        raise UsageError(f"{path} is encrypted with a passphrase; pass --passphrase-env VAR")
    sink = _Sink(out)
    # A file object's name may be a path, "<stdout>", or an int for an os.fdopen file.
    name = getattr(out, "name", None)
    out_name = Path(name if isinstance(name, str) else "the output")
    try:
        reader = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    with reader:
        try:
            if passphrase is not None:
                sink.write(pyrage.passphrase.decrypt(reader.read(), passphrase))
            else:
                pyrage.decrypt_io(reader, sink, list(identities))
        except (pyrage.DecryptError, OSError) as exc:
            if sink.error is not None:
                raise os_error(out_name, sink.error) from exc
            if isinstance(exc, OSError) and exc.errno is not None:
                raise InputError(f"cannot read {path}: {exc.strerror}") from exc
            # pyrage reports a bad payload chunk as an OSError without errno.
            raise _decrypt_error(path, exc, with_passphrase=passphrase is not None) from exc
    try:
        out.flush()
    except OSError as exc:
        raise os_error(out_name, exc) from exc


def _decrypt_error(path: Path, exc: Exception, *, with_passphrase: bool) -> Exception:
    message = str(exc)
    if "No matching keys" in message:
        return UsageError(
            f"the --identity keys cannot decrypt {path}; use the identity whose public key "
            "was given as --recipient"
        )
    if with_passphrase and message.strip() == "Decryption failed":
        return UsageError(f"wrong passphrase for {path}, or the file is damaged")
    return InputError(f"{path} is damaged or truncated ({message}); cannot decrypt it")


def generate_identity(out: Path, *, force: bool = False) -> str:
    """Write a new age X25519 identity to ``out`` (age-keygen format, mode 0600, atomic).

    Refuses an existing file unless ``force``. Returns the public key (``age1...``) to
    pass as ``--recipient``. Raises :class:`OutputError`.
    """
    identity = pyrage.x25519.Identity.generate()
    recipient = str(identity.to_public())
    created = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    text = f"# created: {created}\n# public key: {recipient}\n{identity}\n"
    # No log event here or in decrypt_to: both serve commands whose stdout is data (the
    # recipient, the plaintext), and an unconfigured structlog prints to stdout.
    write_bytes_atomic(out, text.encode("ascii"), force=force)
    return recipient
