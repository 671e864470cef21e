"""Read and validate a migration file for ImportDevice: names with their existing secrets.

Columns (header names trimmed; aliases in brackets): ``DeviceName`` [``device_name``] and
``DeviceSecret`` [``device_secret``] are required; ``Nickname`` [``nickname``,
``DeviceNickname``] and ``Sn`` [``sn``, ``SN``] are optional; others are ignored. Rules,
those of ImportDevice:

* DeviceName: 4-32 characters of ``A-Z a-z 0-9 - _ @ . :``, unique in the file (a later
  duplicate is rejected as ``duplicate of line N``);
* DeviceSecret: 1-32 characters of the same set;
* Nickname: empty, or 1-64 characters of letters, digits, ``_`` and Chinese characters
  (a Chinese character counts as two);
* Sn: empty, or 1-64 characters of letters, digits and ``_``.

The file holds secrets, so it may itself be age-encrypted (``devices.csv.age``,
``devices.parquet.age``): it is decrypted in memory with the identity file given, and
never copied in plaintext. A reason for a rejected row never repeats a secret, and the
rejected rows keep no secret column.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import polars as pl
import polars.exceptions as pl_exc
import pyrage
import structlog

from provisioner.errors import InputError, UsageError
from provisioner.inputs import (
    DEVICE_NAME_COLUMNS,
    NICKNAME_COLUMNS,
    FileKind,
    check_readable,
    file_kind,
    reading_errors,
)
from provisioner.naming import (
    CJK_CHARS,
    DEVICE_NAME_CHARS,
    DEVICE_NAME_PATTERN,
    NICKNAME_MAX,
    device_name_problem,
    device_secret_problem,
    nickname_problem,
    sn_problem,
)
from provisioner.output import load_identities

__all__ = ["ENCRYPTED_SUFFIX", "ImportTable", "read_import"]

ENCRYPTED_SUFFIX: Final = ".age"
_SECRET_COLUMNS: Final = ("DeviceSecret", "device_secret")
_SN_COLUMNS: Final = ("Sn", "sn", "SN")
_ROLES: Final = {
    "DeviceName": DEVICE_NAME_COLUMNS,
    "DeviceSecret": _SECRET_COLUMNS,
    "Nickname": NICKNAME_COLUMNS,
    "Sn": _SN_COLUMNS,
}
_SECRET_PATTERN: Final = rf"^[{DEVICE_NAME_CHARS}]{{1,32}}$"
_NICKNAME_PATTERN: Final = rf"^[A-Za-z0-9_{CJK_CHARS}]+$"
_SN_PATTERN: Final = r"^[A-Za-z0-9_]{1,64}$"
_FIRST_LINE: Final = 2

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ImportTable:
    """The migration file, split. ``valid`` holds the secrets: keep it in memory only."""

    valid: pl.DataFrame  # line, DeviceName, DeviceSecret, Nickname, Sn (null = none)
    rejected: pl.DataFrame  # line, DeviceName, Nickname, reason (no secret)
    total: int
    ignored_columns: tuple[str, ...]
    encrypted: bool


def read_import(path: Path, identity: Path | None = None) -> ImportTable:
    """Read, decrypt if it ends in ``.age``, and validate. One-line :class:`InputError`s."""
    encrypted = path.suffix.lower() == ENCRYPTED_SUFFIX
    inner = Path(path.name[: -len(ENCRYPTED_SUFFIX)]) if encrypted else path
    kind = file_kind(inner)
    check_readable(path, kind)
    if encrypted:
        frame = _read_encrypted(path, kind, identity)
    else:
        if identity is not None:
            raise UsageError(f"{path} is not encrypted (no .age suffix); drop --identity")
        with _withholding_cells(path, kind):
            frame = (
                pl.read_csv(path, infer_schema=False, encoding="utf8")
                if kind == "csv"
                else pl.read_parquet(path)
            )
    return _validate(_select(frame, path), path, encrypted)


def _read_encrypted(path: Path, kind: FileKind, identity: Path | None) -> pl.DataFrame:
    if identity is None:
        raise UsageError(f"{path} is age-encrypted; pass --identity with the key to decrypt it")
    identities = load_identities(identity)
    try:
        plain = pyrage.decrypt(path.read_bytes(), identities)
    except pyrage.DecryptError as exc:
        raise InputError(
            f"{path}: cannot decrypt it with {identity} (wrong key, or not an age file)"
        ) from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc}); check the file") from exc
    with _withholding_cells(path, kind):
        buffer = io.BytesIO(plain)
        return (
            pl.read_csv(buffer, infer_schema=False, encoding="utf8")
            if kind == "csv"
            else pl.read_parquet(buffer)
        )


@contextlib.contextmanager
def _withholding_cells(path: Path, kind: FileKind) -> Iterator[None]:
    """:func:`reading_errors`, but a parser's detail is dropped: it may quote a cell, and
    a cell of this file may be a DeviceSecret."""
    try:
        with reading_errors(path, kind):
            yield
    except InputError as exc:
        if not isinstance(exc.__cause__, (pl_exc.PolarsError, pl_exc.PanicException)):
            raise
        raise InputError(
            f"{path}: not a readable {kind.upper()} file (the parser's detail is withheld: it "
            "may quote a secret); check the quoting and that no row has more fields than the "
            "header"
        ) from None


def _select(frame: pl.DataFrame, path: Path) -> tuple[pl.DataFrame, tuple[str, ...]]:
    found: dict[str, str] = {}
    ignored: list[str] = []
    for column in frame.columns:
        base = column.strip()
        role = next((r for r, aliases in _ROLES.items() if base in aliases), None)
        if role is None:
            ignored.append(column)
        elif role in found:
            raise InputError(f"{path}: several {role} columns; keep exactly one")
        else:
            found[role] = column
    for required in ("DeviceName", "DeviceSecret"):
        if required not in found:
            shown = ", ".join(repr(c) for c in frame.columns[:10]) or "none"
            raise InputError(
                f"{path}: no {required} column (columns found: {shown}); an import needs "
                "DeviceName and DeviceSecret"
            )
    if ignored:
        _log.warning("input.columns_ignored", path=str(path), columns=ignored)
    selected = frame.select(
        *(
            (pl.col(found[role]) if role in found else pl.lit(None)).cast(pl.String).alias(role)
            for role in _ROLES
        )
    ).with_row_index("line", offset=_FIRST_LINE)
    return selected.with_columns(pl.col("line").cast(pl.Int64)), tuple(ignored)


def _validate(
    selected: tuple[pl.DataFrame, tuple[str, ...]], path: Path, encrypted: bool
) -> ImportTable:
    frame, ignored = selected
    empty = {c: pl.col(c).is_null() | (pl.col(c) == "") for c in _ROLES}
    frame = frame.with_columns(
        pl.when(empty[c]).then(None).otherwise(pl.col(c)).alias(c) for c in ("Nickname", "Sn")
    )
    blank = empty["DeviceName"] & empty["DeviceSecret"]
    frame = frame.filter(~blank)
    nick, sn = pl.col("Nickname"), pl.col("Sn")
    counted = nick.str.len_chars() + nick.str.count_matches(f"[{CJK_CHARS}]")
    ok = (
        pl.col("DeviceName").str.contains(DEVICE_NAME_PATTERN).fill_null(False)
        & pl.col("DeviceSecret").str.contains(_SECRET_PATTERN).fill_null(False)
        & (nick.is_null() | (nick.str.contains(_NICKNAME_PATTERN) & (counted <= NICKNAME_MAX)))
        & (sn.is_null() | sn.str.contains(_SN_PATTERN))
        & (pl.col("DeviceName").is_first_distinct() | pl.col("DeviceName").is_null())
    )
    flagged = frame.with_columns(ok.alias("_ok"))
    valid = flagged.filter(pl.col("_ok")).drop("_ok")
    bad = flagged.filter(~pl.col("_ok"))
    first_line: dict[str, int] = {}
    for line, name in frame.select("line", "DeviceName").iter_rows():
        if name is not None:
            first_line.setdefault(name, line)
    reasons = [
        _reason(line, name, secret, nickname, serial, first_line)
        for line, name, secret, nickname, serial in bad.select(
            "line", "DeviceName", "DeviceSecret", "Nickname", "Sn"
        ).iter_rows()
    ]
    rejected = bad.select("line", "DeviceName", "Nickname").with_columns(
        pl.Series("reason", reasons, dtype=pl.String)
    )
    _log.info(
        "input.import_validated",
        path=str(path),
        rows=frame.height,
        valid=valid.height,
        rejected=rejected.height,
        encrypted=encrypted,
    )
    return ImportTable(
        valid=valid,
        rejected=rejected,
        total=frame.height,
        ignored_columns=ignored,
        encrypted=encrypted,
    )


def _reason(
    line: int,
    name: str | None,
    secret: str | None,
    nickname: str | None,
    serial: str | None,
    first_line: dict[str, int],
) -> str:
    problems = [
        device_name_problem(name or ""),
        device_secret_problem(secret or ""),
        nickname_problem(nickname, min_length=1) if nickname is not None else None,
        sn_problem(serial) if serial is not None else None,
    ]
    if name is not None and first_line.get(name, line) != line:
        problems.append(f"duplicate of line {first_line[name]}")
    return "; ".join(p for p in problems if p) or "rejected"
