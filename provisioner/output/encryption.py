"""How the credentials file is encrypted: age recipients or a passphrase, and identities.

The output is always an `age <https://age-encryption.org>`_ file, so operators can read it
with the standard ``age`` CLI as well as with ``provisioner decrypt``. Two mutually
exclusive modes exist:

* recipients: X25519 (``age1...``) and SSH (``ssh-ed25519``/``ssh-rsa``) public keys, given
  on the command line or in a recipients file (age's format: one per line, ``#`` comments
  and blank lines skipped). Only public keys are handled here, so nothing secret is read.
* passphrase: read from an environment variable the operator names, never from the
  command line (which would leak it to ``ps`` and shell history).

Errors are :class:`UsageError`: they name the option, file and line to fix, and never
quote anything that looks like a secret key.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyrage

from provisioner.errors import OutputError, UsageError

__all__ = [
    "Encryption",
    "encrypt_bytes",
    "load_encryption",
    "load_identities",
    "parse_recipient",
]

_SSH_RECIPIENT_TYPES = ("ssh-ed25519", "ssh-rsa")
# Quoting a bad value helps the operator find it; a prefix is enough and bounds the damage
# if a secret was pasted in a form none of the checks below recognises.
_QUOTE_CHARS = 24


@dataclass(frozen=True)
class Encryption:
    """How to encrypt an output file: age recipients XOR a passphrase.

    ``recipients`` holds ``pyrage.x25519.Recipient`` / ``pyrage.ssh.Recipient`` objects.
    The passphrase is kept out of ``repr()`` so it cannot reach a log or a traceback.
    """

    recipients: tuple[object, ...]
    passphrase: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if bool(self.recipients) == (self.passphrase is not None):
            raise ValueError("Encryption needs recipients or a passphrase, not both or neither")
        if self.passphrase == "":
            raise ValueError("Encryption passphrase is empty")

    @property
    def kind(self) -> str:
        """``"recipients"`` or ``"passphrase"``, for logs and reports."""
        return "passphrase" if self.passphrase is not None else "recipients"


def encrypt_bytes(data: bytes, encryption: Encryption) -> bytes:
    """``data`` as a whole age file, encrypted in memory: for small secrets only.

    Large outputs stream through :class:`~provisioner.output.CredentialWriter` instead.
    Raises :class:`OutputError`; the message never holds the plaintext.
    """
    try:
        if encryption.passphrase is not None:
            return bytes(pyrage.passphrase.encrypt(data, encryption.passphrase))
        return bytes(pyrage.encrypt(data, list(encryption.recipients)))
    except pyrage.EncryptError as exc:
        raise OutputError(f"encryption failed: {exc}") from exc


def _looks_secret(value: str) -> bool:
    upper = value.upper()
    return (
        upper.startswith("AGE-SECRET-KEY-")
        or upper.startswith("AGE-PLUGIN-")
        or "PRIVATE KEY" in upper
    )


def _quote(value: str) -> str:
    if len(value) <= _QUOTE_CHARS:
        return repr(value)
    return repr(value[:_QUOTE_CHARS] + "...")


def parse_recipient(value: str, where: str) -> object:
    """Parse one recipient string; ``where`` names its origin in error messages.

    Raises :class:`UsageError` for anything that is not an X25519 or SSH public key.
    """
    text = value.strip()
    if _looks_secret(text):
        # Never echo it: the operator pasted a private key where a public one belongs.
        raise UsageError(
            f"{where} is a secret key, not a recipient: pass its public key "
            "(age-keygen -y FILE, or the .pub file of an SSH key)"
        )
    key_type = text.split(maxsplit=1)[0] if text else ""
    try:
        if key_type.lower().startswith("age1"):
            return pyrage.x25519.Recipient.from_str(text)
        if key_type in _SSH_RECIPIENT_TYPES:
            return pyrage.ssh.Recipient.from_str(text)
    except pyrage.RecipientError as exc:
        raise UsageError(
            f"{where} ({_quote(text)}) is not a valid public key: {exc}; check it was copied whole"
        ) from exc
    raise UsageError(
        f"{where} ({_quote(text)}) is not a recipient: expected an age public key (age1...) "
        f"or an SSH public key ({', '.join(_SSH_RECIPIENT_TYPES)})"
    )


def _entries(text: str) -> Iterator[tuple[int, str]]:
    """(line number, stripped line) of the lines of a key file that are neither blank nor
    ``#`` comments: the format of recipients files and of age identity files alike."""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield number, stripped


def _read_recipients_file(path: Path) -> list[object]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise UsageError(f"recipients file {path} does not exist; check --recipients-file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read recipients file {path}: {reason}") from exc
    found = [parse_recipient(entry, f"{path} line {number}") for number, entry in _entries(text)]
    if not found:
        raise UsageError(f"recipients file {path} has no recipients; add age1... or ssh-... lines")
    return found


def load_encryption(
    recipients: Sequence[str] = (),
    recipients_file: Path | None = None,
    passphrase_env: str | None = None,
    env: Mapping[str, str] = os.environ,
) -> Encryption:
    """Build the :class:`Encryption` from the command-line options.

    ``recipients`` are ``--recipient`` values, ``recipients_file`` the ``--recipients-file``
    and ``passphrase_env`` the name of the environment variable holding a passphrase.
    """
    has_recipients = bool(recipients) or recipients_file is not None
    if passphrase_env is not None and has_recipients:
        raise UsageError(
            "--passphrase-env cannot be combined with --recipient/--recipients-file; "
            "choose one way to encrypt"
        )
    if passphrase_env is not None:
        name = passphrase_env.strip()
        if not name:
            raise UsageError("--passphrase-env needs the name of an environment variable")
        passphrase = env.get(name, "")
        if not passphrase:
            raise UsageError(
                f"environment variable {name} is not set or empty; export the passphrase in it"
            )
        return Encryption(recipients=(), passphrase=passphrase)
    if not has_recipients:
        raise UsageError(
            "the output must be encrypted: pass --recipient age1..., --recipients-file FILE "
            "or --passphrase-env VAR (create a key with `provisioner keygen`)"
        )
    parsed = [
        parse_recipient(value, f"--recipient #{index}")
        for index, value in enumerate(recipients, start=1)
    ]
    if recipients_file is not None:
        parsed.extend(_read_recipients_file(recipients_file))
    return Encryption(recipients=tuple(parsed))


def load_identities(identity_path: Path) -> list[object]:
    """Read the private keys of an identity file for decryption.

    Accepts an age-keygen file (``AGE-SECRET-KEY-1...`` lines, ``#`` comments, blank lines)
    or an unencrypted OpenSSH private key (ed25519 or RSA). Raises :class:`UsageError`.
    """
    try:
        data = identity_path.read_bytes()
    except FileNotFoundError as exc:
        raise UsageError(f"identity file {identity_path} does not exist; check --identity") from exc
    except OSError as exc:
        raise UsageError(f"cannot read identity file {identity_path}: {exc.strerror}") from exc
    if b"-----BEGIN" in data and b"PRIVATE KEY-----" in data:
        try:
            return [pyrage.ssh.Identity.from_buffer(data)]
        except pyrage.IdentityError as exc:
            raise UsageError(
                f"identity file {identity_path} is not a usable SSH private key ({exc}); "
                "passphrase-protected keys are not supported: use an age identity "
                "(`provisioner keygen`) or an unencrypted copy of the key"
            ) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"identity file {identity_path} is not an age identity file") from exc
    identities: list[object] = []
    for number, entry in _entries(text):
        if not entry.upper().startswith("AGE-SECRET-KEY-1"):
            # Plugin identities (AGE-PLUGIN-...) and stray text land here; never quote the line.
            raise UsageError(
                f"identity file {identity_path} line {number} is not an age secret key "
                "(AGE-SECRET-KEY-1...); plugin identities are not supported"
            )
        try:
            identities.append(pyrage.x25519.Identity.from_str(entry))
        except pyrage.IdentityError as exc:
            raise UsageError(
                f"identity file {identity_path} line {number} is not a valid age secret key; "
                "check the file is complete"
            ) from exc
    if not identities:
        raise UsageError(f"identity file {identity_path} holds no AGE-SECRET-KEY-1... line")
    return identities
