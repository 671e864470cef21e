"""The run's device list (CSV or Parquet): read it, validate it in polars, split it.

``run`` and ``validate`` read their input with :func:`read_devices`. The file is opened by
:mod:`provisioner.inputs.files` (what it really is, one-line errors) and loaded by
:mod:`provisioner.inputs.loading` (physical line numbers, limits): scanned lazily with the
streaming engine, only the DeviceName and Nickname columns are materialised, as strings,
so memory follows those two columns and not the width of the file. Validation is
vectorised with the patterns of :mod:`provisioner.naming`; only rejected rows (usually few)
go through Python, to get the exact reason a person reads, and only a bounded prefix of
each of their cells.

Rules, in the order a row meets them:

* Columns: ``DeviceName`` (or ``device_name``) is required; ``Nickname`` (or ``nickname``,
  ``DeviceNickname``) is optional. Header names are matched after trimming spaces. Any other
  column is ignored, logged as ``input.columns_ignored`` and returned (names shortened to
  40 characters).
* Every record is a row: rows read = valid + rejected. An empty physical line is not a
  record (see :mod:`provisioner.inputs.loading`): it is skipped, counted in
  :attr:`InputTable.empty_lines` and logged as ``input.empty_lines_skipped``. A record with
  neither a DeviceName nor a Nickname (``,`` or ``,,x`` in CSV, a null or empty Parquet
  cell) is rejected as ``empty row: no DeviceName``.
* CSV: a DeviceName or Nickname cell holding a line break means broken quoting (a stray
  quote swallowed the lines after it): the file is refused with the line the record starts
  on, and nothing else is checked.
* Values are never trimmed. An empty cell (``,,`` or ``""``) means "no value".
* A cell longer than :attr:`ReadLimits.max_cell_chars` is not read; the row is rejected with
  the cell's length. More rows than :attr:`ReadLimits.max_rows` refuses the file.
* DeviceName: 4-32 characters of ``A-Z a-z 0-9 - _ @ . :``; empty is rejected.
* Nickname: empty means no nickname. Otherwise letters, digits, ``_`` and Chinese characters,
  4-64 counted characters with a Chinese character counting two (the stricter
  BatchRegisterDeviceWithApplyId / RegisterDevice rule, so one file works with every
  operation). A cell of only whitespace is rejected with its own reason.
* Duplicates: DeviceNames are compared exactly (case-sensitive). The first occurrence is kept
  (if otherwise valid); every later one is rejected as ``duplicate of line N``.
* A row with several problems gets every reason, joined by ``"; "``.

Line numbers: the physical line of the file on which the record starts, the header being
line 1, whatever quoted newlines, empty lines, CRLF or a BOM come before it. For Parquet,
the 1-based row number plus one, so the numbers read the same as for a CSV export.

Rejected rows repeat at most 40 characters of a cell (then ``…``); they are written by
:func:`provisioner.inputs.rejects.write_rejects`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import polars as pl
import structlog

from provisioner.errors import InputError
from provisioner.inputs.columns import DEVICE_NAME_COLUMNS, NICKNAME_COLUMNS, header_name
from provisioner.inputs.files import FileKind, open_source
from provisioner.inputs.limits import ReadLimits, echo_cell, short
from provisioner.inputs.loading import chars_column, load, log_empty_lines, read_schema
from provisioner.naming import (
    CJK_CHARS,
    DEVICE_NAME_MAX,
    DEVICE_NAME_PATTERN,
    NICKNAME_MAX,
    NICKNAME_MIN,
    device_name_problem,
    nickname_problem,
)

__all__ = ["InputTable", "read_devices", "validate_frame"]

_LINE: Final = "line"
_NAME: Final = "DeviceName"
_NICK: Final = "Nickname"
_REASON: Final = "reason"
_NAME_CHARS: Final = chars_column(_NAME)
_NICK_CHARS: Final = chars_column(_NICK)
_NICKNAME_PATTERN: Final = rf"^[A-Za-z0-9_{CJK_CHARS}]*$"
_CJK_PATTERN: Final = f"[{CJK_CHARS}]"
# What of a rejected cell reaches Python: enough to word any reason exactly (a Nickname
# counts up to two per character), never a whole long cell.
_PREFIX: Final = 2 * NICKNAME_MAX + 2
# Parquet column types that read as text without losing meaning; floats, dates and nested
# types would turn into strings nobody typed.
_TEXT_LIKE = (pl.String, pl.Categorical, pl.Enum, pl.Null)

_log = structlog.get_logger("provisioner.inputs")


@dataclass(frozen=True, slots=True)
class InputTable:
    """The device list, split. Both frames keep file order; ``line`` is described above.

    ``total`` (rows read) = ``valid.height`` + ``rejected.height``. ``empty_lines``: empty
    physical lines skipped as not records; ``first_empty_lines``: the first few of them.
    """

    valid: pl.DataFrame  # line (Int64), DeviceName (String), Nickname (String, null = none)
    rejected: pl.DataFrame  # line (Int64), DeviceName, Nickname, reason (String)
    total: int
    ignored_columns: tuple[str, ...]
    empty_lines: int = 0
    first_empty_lines: tuple[int, ...] = ()


# --------------------------------------------------------------------------- reading


def read_devices(path: Path, limits: ReadLimits | None = None) -> InputTable:
    """Read and validate a device list. Raises :class:`InputError` with a one-line message.

    ``limits`` defaults to :class:`ReadLimits` from the environment.
    """
    limits = ReadLimits() if limits is None else limits
    source = open_source(path)
    schema = read_schema(source)
    name_col, nick_col, ignored = _pick_columns(list(schema.names()), path, source.kind)
    if source.kind == "parquet":
        _check_parquet_types(schema, (name_col, nick_col), path)
    shown = tuple(short(c) for c in ignored)
    if ignored:
        _log.warning("input.columns_ignored", path=str(path), columns=list(shown))
    loaded = load(source, {_NAME: name_col, _NICK: nick_col}, limits, needed=(_NAME, _NICK))
    log_empty_lines(path, loaded)
    table = validate_frame(loaded.frame, ignored_columns=shown)
    return dataclasses.replace(
        table, empty_lines=loaded.empty_lines, first_empty_lines=loaded.first_empty
    )


def _pick_columns(
    names: list[str], path: Path, kind: FileKind
) -> tuple[str, str | None, tuple[str, ...]]:
    if len(names) == 1 and ("\r" in names[0] or "\n" in names[0]):
        # Polars splits lines on \n only: a \r inside the header means CR-only line ends.
        raise InputError(
            f"{path}: the header holds a carriage return (old Mac line endings?); "
            "save the file with LF or CRLF line endings"
        )
    by_role: dict[str, list[str]] = {_NAME: [], _NICK: []}
    ignored: list[str] = []
    for name in names:
        base = header_name(name)
        if base in DEVICE_NAME_COLUMNS:
            by_role[_NAME].append(name)
        elif base in NICKNAME_COLUMNS:
            by_role[_NICK].append(name)
        else:
            ignored.append(name)
    for role, aliases in ((_NAME, DEVICE_NAME_COLUMNS), (_NICK, NICKNAME_COLUMNS)):
        if len(by_role[role]) > 1:
            found = ", ".join(header_name(n, strip=False) for n in by_role[role])
            raise InputError(
                f"{path}: several {role} columns ({found}); keep exactly one of "
                f"{', '.join(aliases)}"
            )
    if not by_role[_NAME]:
        # Header names may be quoted, but only a short prefix of each: they come from the file.
        shown = ", ".join(repr(short(n)) for n in names[:10]) or "none"
        if len(names) > 10:
            shown += f" and {len(names) - 10} more"
        fix = (
            "add a header line naming the DeviceName column"
            if kind == "csv"
            else ("add a DeviceName column")
        )
        raise InputError(f"{path}: no DeviceName column (columns found: {shown}); {fix}")
    nick = by_role[_NICK][0] if by_role[_NICK] else None
    return by_role[_NAME][0], nick, tuple(ignored)


def _check_parquet_types(schema: pl.Schema, columns: tuple[str, str | None], path: Path) -> None:
    for col in columns:
        if col is None:
            continue
        dtype = schema[col]
        if not (isinstance(dtype, _TEXT_LIKE) or dtype.is_integer()):
            raise InputError(f"{path}: column {col} has type {dtype}; store it as a string column")


# --------------------------------------------------------------------------- validation


def validate_frame(frame: pl.DataFrame, *, ignored_columns: tuple[str, ...] = ()) -> InputTable:
    """Validate rows already read: ``line`` (integer), ``DeviceName`` and ``Nickname`` (strings).

    This is the whole of :func:`read_devices` after reading, for callers (and tests) that
    have the rows in memory already. Optional ``DeviceName_chars`` / ``Nickname_chars``
    columns (from :func:`provisioner.inputs.loading.load`) give the length of a cell that was
    too long to read (its value then null); such a row is rejected with that length.
    """
    name, nick = pl.col(_NAME), pl.col(_NICK)
    nick_long = pl.col(_NICK_CHARS).is_not_null()
    # An empty cell means "no value", whether written ,, (null) or "" (empty string).
    no_name = name.is_null() | (name == "")
    no_nick = nick.is_null() | (nick == "")
    frame = frame.select(
        pl.col(_LINE).cast(pl.Int64),
        name.cast(pl.String),
        nick.cast(pl.String),
        *(
            pl.col(c).cast(pl.UInt32) if c in frame.columns else pl.lit(None, pl.UInt32).alias(c)
            for c in (_NAME_CHARS, _NICK_CHARS)
        ),
    )
    # Eager and flat on purpose: one pass computes the boolean columns and the frames
    # below share the string buffers; a lazy plan with rewritten string columns peaked
    # about 100 MB higher on a million rows.
    flags = frame.select(
        name.str.contains(DEVICE_NAME_PATTERN).fill_null(False).alias("_name_ok"),
        (
            (no_nick & ~nick_long)
            | (
                nick.str.contains(_NICKNAME_PATTERN)
                & _counted(nick).is_between(NICKNAME_MIN, NICKNAME_MAX)
            )
        )
        .fill_null(False)
        .alias("_nick_ok"),
        (name.is_first_distinct() | no_name).alias("_first"),
    )
    ok = flags.select(pl.col("_name_ok") & pl.col("_nick_ok") & pl.col("_first")).to_series()
    valid = frame.filter(ok).select(_LINE, _NAME, _empty_to_null(nick))
    bad = pl.concat([frame, flags], how="horizontal").filter(~ok)
    bad = bad.with_columns(_empty_to_null(name), _empty_to_null(nick))
    dup_names = bad.filter(~pl.col("_first")).get_column(_NAME).unique()
    # Only duplicates need the line of the first occurrence: look up just those names.
    firsts = (
        frame.filter(name.is_in(dup_names.implode()))
        .group_by(_NAME)
        .agg(pl.col(_LINE).min().alias("_first_line"))
    )
    bad = bad.join(firsts, on=_NAME, how="left", maintain_order="left")
    rejected = bad.select(_LINE, echo_cell(name), echo_cell(nick)).with_columns(_reasons(bad))
    return InputTable(
        valid=valid,
        rejected=rejected,
        total=frame.height,
        ignored_columns=ignored_columns,
    )


def _reasons(bad: pl.DataFrame) -> pl.Series:
    """The reason of each rejected row, worded by :mod:`provisioner.naming`.

    A reason depends only on what is collected in ``facts`` (a cell's value only where its
    characters decide the reason), so it is worded once per distinct set of facts: ten
    million rows of one repeated bad cell make one call, not ten million.
    """
    name, nick = pl.col(_NAME), pl.col(_NICK)
    name_long, nick_long = pl.col(_NAME_CHARS).is_not_null(), pl.col(_NICK_CHARS).is_not_null()
    nick_bad = ~pl.col("_nick_ok")
    facts = bad.select(
        (name.is_null() & nick.is_null() & ~name_long & ~nick_long).alias("_empty"),
        pl.when(~pl.col("_name_ok") & name.str.len_chars().is_between(1, DEVICE_NAME_MAX))
        .then(name)
        .alias("_name"),
        pl.coalesce(_NAME_CHARS, name.str.len_chars()).alias("_name_len"),
        name_long.alias("_name_long"),
        pl.when(nick_bad).then(nick.str.head(_PREFIX)).alias("_nick"),
        pl.when(nick_bad).then(pl.coalesce(_NICK_CHARS, nick.str.len_chars())).alias("_nick_len"),
        pl.when(nick_bad).then(_counted(nick)).alias("_nick_counted"),
        nick_long.alias("_nick_long"),
        "_name_ok",
        "_nick_ok",
        "_first",
        "_first_line",
    )
    keys = facts.unique()
    worded = pl.Series(_REASON, [_reason(*row) for row in keys.iter_rows()], dtype=pl.String)
    keys = keys.with_columns(worded)
    joined = facts.join(keys, on=facts.columns, how="left", nulls_equal=True, maintain_order="left")
    return joined.get_column(_REASON)


def _counted(nick: pl.Expr) -> pl.Expr:
    return nick.str.len_chars() + nick.str.count_matches(_CJK_PATTERN)


def _empty_to_null(col: pl.Expr) -> pl.Expr:
    return pl.when(col == "").then(None).otherwise(col).alias(col.meta.output_name())


def _reason(
    empty: bool,
    name: str | None,
    name_len: int | None,
    name_long: bool,
    nick: str | None,
    nick_len: int | None,
    nick_counted: int | None,
    nick_long: bool,
    name_ok: bool,
    nick_ok: bool,
    first: bool,
    first_line: int | None,
) -> str:
    if empty:
        return "empty row: no DeviceName"
    reasons: list[str] = []
    if name_long:
        reasons.append(_too_long(_NAME, name_len, DEVICE_NAME_MAX))
    elif not name_ok:
        # The polars pattern and naming.py encode the same rule; naming.py words the reason.
        problem = device_name_problem(name or "", length=name_len or 0)
        reasons.append(problem or "DeviceName is not valid")
    elif not first and first_line is not None:
        reasons.append(f"duplicate of line {first_line}")
    if nick_long:
        reasons.append(_too_long(_NICK, nick_len, NICKNAME_MAX))
    elif not nick_ok and nick is not None:
        reasons.append(_nickname_reason(nick, nick_len, nick_counted))
    return "; ".join(reasons) or "rejected"


def _too_long(role: str, length: int | None, most: int) -> str:
    return f"{role} is {length} characters long; at most {most} are allowed"


def _nickname_reason(value: str, length: int | None, counted: int | None) -> str:
    if length == len(value) and value.isspace():
        return "Nickname is only whitespace; leave the cell empty for no nickname"
    return nickname_problem(value, counted=counted) or "Nickname is not valid"
