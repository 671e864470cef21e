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

The file is opened by :mod:`provisioner.inputs.files` (what it really is) and loaded by
:mod:`provisioner.inputs.loading` (physical line numbers,
:class:`~provisioner.inputs.limits.ReadLimits`). Every record is a row: rows read
= valid + rejected; empty physical lines are not records (counted in ``empty_lines``); a
record with no value at all is rejected as ``empty row: no DeviceName``.

Any cell may be a secret: the DeviceSecret column, but also any cell of a file without a
header, with a misplaced column, or where a stray quote swallowed the rows after it. So:

* the file may itself be age-encrypted (``devices.csv.age``, ``devices.parquet.age``): it is
  decrypted in memory with the identity file given, and never copied in plaintext;
* no message quotes a cell or a parser's detail (a headerless file is described by its
  number of columns, not by its first row);
* a rejected row keeps its line, its DeviceName only if it is a valid DeviceName, its
  Nickname only if it is a valid Nickname, and a reason that quotes no cell, not even the
  offending character (``ImportTable.rejected`` is what the rejects file and the journal
  get);
* in CSV, a DeviceName, DeviceSecret, Nickname or Sn cell holding a line break means broken
  quoting: the file is refused naming the line the record starts on, and nothing else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import polars as pl
import pyrage
import structlog

from provisioner.errors import InputError, UsageError
from provisioner.inputs.columns import DEVICE_NAME_COLUMNS, NICKNAME_COLUMNS, header_name
from provisioner.inputs.files import file_kind, open_source, read_file_bytes
from provisioner.inputs.limits import ReadLimits, echo_cell, short
from provisioner.inputs.loading import chars_column, load, log_empty_lines, read_schema
from provisioner.naming import (
    CJK_CHARS,
    DEVICE_NAME_CHARS,
    DEVICE_NAME_MAX,
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
# The most characters each field may have, for the reason of a cell too long to read.
_MOST: Final = {
    "DeviceName": DEVICE_NAME_MAX,
    "DeviceSecret": 32,
    "Nickname": NICKNAME_MAX,
    "Sn": 64,
}
_SECRET_PATTERN: Final = rf"^[{DEVICE_NAME_CHARS}]{{1,32}}$"
_NICKNAME_PATTERN: Final = rf"^[A-Za-z0-9_{CJK_CHARS}]+$"
_SN_PATTERN: Final = r"^[A-Za-z0-9_]{1,64}$"
# The flag each cell's rule sets, and the pattern of its characters alone (any length).
_OK: Final = {
    "DeviceName": "_name_ok",
    "DeviceSecret": "_secret_ok",
    "Nickname": "_nick_ok",
    "Sn": "_sn_ok",
}
_CHARS: Final = {
    "DeviceName": rf"^[{DEVICE_NAME_CHARS}]*$",
    "DeviceSecret": rf"^[{DEVICE_NAME_CHARS}]*$",
    "Nickname": rf"^[A-Za-z0-9_{CJK_CHARS}]*$",
    "Sn": r"^[A-Za-z0-9_]*$",
}

_log = structlog.get_logger("provisioner.inputs")


@dataclass(frozen=True, slots=True)
class ImportTable:
    """The migration file, split. ``valid`` holds the secrets: keep it in memory only.

    ``total`` (rows read) = ``valid.height`` + ``rejected.height``.
    """

    valid: pl.DataFrame  # line, DeviceName, DeviceSecret, Nickname, Sn (null = none)
    rejected: pl.DataFrame  # line, DeviceName, Nickname (each null unless valid), reason
    total: int
    ignored_columns: tuple[str, ...]
    encrypted: bool
    empty_lines: int = 0


def read_import(
    path: Path, identity: Path | None = None, limits: ReadLimits | None = None
) -> ImportTable:
    """Read, decrypt if it ends in ``.age``, and validate. One-line :class:`InputError`s.

    ``limits`` defaults to :class:`ReadLimits` from the environment.
    """
    limits = ReadLimits() if limits is None else limits
    encrypted = path.suffix.lower() == ENCRYPTED_SUFFIX
    inner = Path(path.name[: -len(ENCRYPTED_SUFFIX)]) if encrypted else path
    kind = file_kind(inner)
    if encrypted:
        plain = _decrypt(path, identity)
        source = open_source(path, kind=kind, data=plain, secret=True)
    else:
        if identity is not None:
            raise UsageError(f"{path} is not encrypted (no .age suffix); drop --identity")
        source = open_source(path, kind=kind, secret=True)
    columns, ignored = _select(list(read_schema(source).names()), path)
    loaded = load(source, columns, limits, needed=tuple(_ROLES))
    table = _validate(loaded.frame, path, encrypted, ignored)
    log_empty_lines(path, loaded)
    return dataclasses.replace(table, empty_lines=loaded.empty_lines)


def _decrypt(path: Path, identity: Path | None) -> bytes:
    data = read_file_bytes(path)
    if identity is None:
        raise UsageError(f"{path} is age-encrypted; pass --identity with the key to decrypt it")
    identities = load_identities(identity)
    try:
        plain: bytes = pyrage.decrypt(data, identities)
    except pyrage.DecryptError as exc:
        raise InputError(
            f"{path}: cannot decrypt it with {identity} (wrong key, or not an age file)"
        ) from exc
    return plain


def _select(names: list[str], path: Path) -> tuple[dict[str, str | None], tuple[str, ...]]:
    found: dict[str, str] = {}
    ignored: list[str] = []
    for column in names:
        base = header_name(column)
        role = next((r for r, aliases in _ROLES.items() if base in aliases), None)
        if role is None:
            ignored.append(column)
        elif role in found:
            raise InputError(f"{path}: several {role} columns; keep exactly one")
        else:
            found[role] = column
    for required in ("DeviceName", "DeviceSecret"):
        if required not in found:
            # The first line may be a row of secrets (no header): count it, never quote it.
            raise InputError(
                f"{path}: no {required} column among the {len(names)} columns of the first "
                "line; the first line must be a header naming DeviceName and DeviceSecret "
                "(Nickname and Sn are optional)"
            )
    if ignored:
        _log.warning("input.columns_ignored", path=str(path), columns=[short(c) for c in ignored])
    return {role: found.get(role) for role in _ROLES}, tuple(short(c) for c in ignored)


def _validate(
    frame: pl.DataFrame, path: Path, encrypted: bool, ignored: tuple[str, ...]
) -> ImportTable:
    name, secret, nick, sn = (pl.col(r) for r in _ROLES)
    long = {r: pl.col(chars_column(r)).is_not_null() for r in _ROLES}
    # An empty cell means "no value", whether written ,, (null) or "" (empty string).
    frame = frame.with_columns(
        pl.when(pl.col(r) == "").then(None).otherwise(pl.col(r)).alias(r) for r in _ROLES
    )
    counted = nick.str.len_chars() + nick.str.count_matches(f"[{CJK_CHARS}]")
    flags = frame.select(
        name.str.contains(DEVICE_NAME_PATTERN).fill_null(False).alias("_name_ok"),
        secret.str.contains(_SECRET_PATTERN).fill_null(False).alias("_secret_ok"),
        (
            (nick.is_null() & ~long["Nickname"])
            | (nick.str.contains(_NICKNAME_PATTERN) & (counted <= NICKNAME_MAX))
        )
        .fill_null(False)
        .alias("_nick_ok"),
        ((sn.is_null() & ~long["Sn"]) | sn.str.contains(_SN_PATTERN))
        .fill_null(False)
        .alias("_sn_ok"),
        (name.is_first_distinct() | name.is_null()).alias("_first"),
    )
    ok = flags.select(pl.all_horizontal(pl.all())).to_series()
    valid = frame.filter(ok).select("line", *_ROLES)
    bad = pl.concat([frame, flags], how="horizontal").filter(~ok)
    dup_names = bad.filter(~pl.col("_first")).get_column("DeviceName").unique()
    firsts = (
        frame.filter(name.is_in(dup_names.implode()))
        .group_by("DeviceName")
        .agg(pl.col("line").min().alias("_first_line"))
    )
    bad = bad.join(firsts, on="DeviceName", how="left", maintain_order="left")
    reasons = _reasons(bad, counted, long)
    # Only what passed its own rule is repeated: a failed cell may be a misplaced secret.
    # (A valid Nickname may have 64 characters: shortened like any repeated cell.)
    rejected = bad.select(
        "line",
        pl.when("_name_ok").then(name).otherwise(None).alias("DeviceName"),
        echo_cell(pl.when(pl.col("_nick_ok")).then(nick).otherwise(None).alias("Nickname")),
    ).with_columns(reasons)
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


def _reasons(bad: pl.DataFrame, counted: pl.Expr, long: dict[str, pl.Expr]) -> pl.Series:
    """The reason of each rejected row, from facts computed in polars: which rule each cell
    breaks, its length, whether its characters are allowed. No cell value reaches Python,
    and a reason is worded once per distinct set of facts (a file of ten million copies
    of one bad row makes one call)."""
    facts: list[pl.Expr | str] = [
        pl.all_horizontal(pl.col(r).is_null() & ~long[r] for r in _ROLES).alias("_empty"),
        "_first",
        "_first_line",
        pl.when(~pl.col("_nick_ok")).then(counted).alias("_counted"),
    ]
    for role in _ROLES:
        cell, bad_cell = pl.col(role), ~pl.col(_OK[role])
        facts += [
            _OK[role],
            long[role].alias(f"_{role}_long"),
            pl.when(bad_cell)
            .then(pl.coalesce(chars_column(role), cell.str.len_chars()))
            .alias(f"_{role}_len"),
            pl.when(bad_cell).then(cell.str.contains(_CHARS[role])).alias(f"_{role}_chars"),
        ]
    table = bad.select(facts)
    keys = table.unique()
    worded = [_reason(row) for row in keys.iter_rows(named=True)]
    keys = keys.with_columns(pl.Series("reason", worded, dtype=pl.String))
    joined = table.join(keys, on=table.columns, how="left", nulls_equal=True, maintain_order="left")
    return joined.get_column("reason")


def _reason(row: dict[str, object]) -> str:
    """Why a row is rejected, in the words of :mod:`provisioner.naming`, quoting no cell."""
    if row["_empty"]:
        return "empty row: no DeviceName"
    problems: list[str | None] = []
    for role in _ROLES:
        if row[_OK[role]]:
            continue
        length, chars = row[f"_{role}_len"], row[f"_{role}_chars"] is True
        n = length if isinstance(length, int) else 0
        if row[f"_{role}_long"]:
            problems.append(f"{role} is {n} characters long; at most {_MOST[role]} are allowed")
        elif role == "DeviceName":
            problems.append(device_name_problem("", length=n, quote=False, chars_ok=chars))
        elif role == "DeviceSecret":
            problems.append(device_secret_problem("", length=n, chars_ok=chars))
        elif role == "Nickname":
            counted = row["_counted"]
            problems.append(
                nickname_problem(
                    "",
                    min_length=1,
                    counted=counted if isinstance(counted, int) else 0,
                    quote=False,
                    chars_ok=chars,
                )
            )
        else:
            problems.append(sn_problem("", length=n, chars_ok=chars))
    if not row["_first"] and row["_first_line"] is not None:
        problems.append(f"duplicate of line {row['_first_line']}")
    return "; ".join(p for p in problems if p) or "rejected"
