"""Read the device list (CSV or Parquet), validate it in polars, split it into valid and rejected.

The file is scanned lazily with the streaming engine and only the DeviceName and Nickname
columns are materialised, all as strings, so memory follows those two columns and not the
width of the file. Validation is vectorised with the patterns of :mod:`provisioner.naming`;
only rejected rows (usually few) go through Python, to get the exact reason a person reads.

Rules, in the order a row meets them:

* Columns: ``DeviceName`` (or ``device_name``) is required; ``Nickname`` (or ``nickname``,
  ``DeviceNickname``) is optional. Header names are matched after trimming spaces. Any other
  column is ignored, logged as ``input.columns_ignored`` and returned.
* Values are never trimmed. An empty cell (``,,`` or ``""``) means "no value". A record with
  neither a DeviceName nor a Nickname (a blank line) is skipped and not counted.
* DeviceName: 4-32 characters of ``A-Z a-z 0-9 - _ @ . :``; empty is rejected.
* Nickname: empty means no nickname. Otherwise letters, digits, ``_`` and Chinese characters,
  4-64 counted characters with a Chinese character counting two (the stricter
  BatchRegisterDeviceWithApplyId / RegisterDevice rule, so one file works with every
  operation). A cell of only whitespace is rejected with its own reason.
* Duplicates: DeviceNames are compared exactly (case-sensitive). The first occurrence is kept
  (if otherwise valid); every later one is rejected as ``duplicate of line N``.
* A row with several problems gets every reason, joined by ``"; "``.

Line numbers: for CSV, the physical line of the record assuming one line per record (the
header is line 1, the first data row line 2; a quoted field holding a newline shifts the
lines after it). For Parquet, the 1-based row number plus one, so the numbers read the
same as for a CSV export of the same table.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import polars as pl
import polars.exceptions as pl_exc
import structlog

from provisioner.errors import InputError, OutputError
from provisioner.naming import (
    CJK_CHARS,
    DEVICE_NAME_PATTERN,
    NICKNAME_MAX,
    NICKNAME_MIN,
    device_name_problem,
    nickname_problem,
)

__all__ = [
    "CSV_SUFFIXES",
    "DEVICE_NAME_COLUMNS",
    "NICKNAME_COLUMNS",
    "PARQUET_SUFFIXES",
    "REJECTS_COLUMNS",
    "FileKind",
    "InputTable",
    "check_readable",
    "file_kind",
    "fingerprint",
    "read_devices",
    "reading_errors",
    "validate_frame",
    "write_rejects",
]

REJECTS_COLUMNS: tuple[str, ...] = ("line", "DeviceName", "Nickname", "reason")
DEVICE_NAME_COLUMNS: tuple[str, ...] = ("DeviceName", "device_name")
NICKNAME_COLUMNS: tuple[str, ...] = ("Nickname", "nickname", "DeviceNickname")
CSV_SUFFIXES: tuple[str, ...] = (".csv", ".txt")
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet", ".pq")

_LINE: Final = "line"
_NAME: Final = "DeviceName"
_NICK: Final = "Nickname"
_REASON: Final = "reason"
# The first data row is line 2: the header (CSV) or its notional equivalent (Parquet) is 1.
_FIRST_LINE: Final = 2
_NICKNAME_PATTERN: Final = rf"^[A-Za-z0-9_{CJK_CHARS}]*$"
_CJK_PATTERN: Final = f"[{CJK_CHARS}]"
_DUPLICATED_SUFFIX = re.compile(r"_duplicated_\d+$")
_FINGERPRINT_DOMAIN: Final = b"provisioner.fingerprint.v1\n"
_FINGERPRINT_SLICE: Final = 100_000
# Parquet column types that read as text without losing meaning; floats, dates and nested
# types would turn into strings nobody typed.
_TEXT_LIKE = (pl.String, pl.Categorical, pl.Enum, pl.Null)

_Kind = Literal["csv", "parquet"]
FileKind = _Kind

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class InputTable:
    """The device list, split. Both frames keep file order; ``line`` is described above."""

    valid: pl.DataFrame  # line (Int64), DeviceName (String), Nickname (String, null = none)
    rejected: pl.DataFrame  # line (Int64), DeviceName, Nickname, reason (String)
    total: int  # data rows read (blank records excluded)
    ignored_columns: tuple[str, ...]


# --------------------------------------------------------------------------- reading


def read_devices(path: Path) -> InputTable:
    """Read and validate a device list. Raises :class:`InputError` with a one-line message."""
    kind = _kind_of(path)
    _check_readable(path, kind)
    with _translating(path, kind):
        lf = (
            pl.scan_csv(path, infer_schema=False, encoding="utf8")
            if kind == "csv"
            else pl.scan_parquet(path)
        )
        schema = lf.collect_schema()
    name_col, nick_col, ignored = _pick_columns(list(schema.names()), path, kind)
    if kind == "parquet":
        _check_parquet_types(schema, (name_col, nick_col), path)
    if ignored:
        _log.warning("input.columns_ignored", path=str(path), columns=list(ignored))
    nick_expr = pl.col(nick_col) if nick_col is not None else pl.lit(None)
    query = lf.select(
        pl.col(name_col).cast(pl.String).alias(_NAME),
        nick_expr.cast(pl.String).alias(_NICK),
    ).with_row_index(_LINE, offset=_FIRST_LINE)
    with _translating(path, kind):
        frame = query.collect(engine="streaming")
    return validate_frame(frame, ignored_columns=ignored)


def _kind_of(path: Path) -> _Kind:
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    accepted = ", ".join(CSV_SUFFIXES + PARQUET_SUFFIXES)
    raise InputError(
        f"{path}: unknown file type {suffix or '(no extension)'!s}; "
        f"name the file with one of {accepted} (CSV or Parquet)"
    )


def _check_readable(path: Path, kind: _Kind) -> None:
    # Opening the file ourselves gives clear messages for the common mistakes before
    # polars gets a chance to describe them in its own words.
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file; check the path") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{path}: is a directory; give the path of a CSV or Parquet file") from exc
    except PermissionError as exc:
        raise InputError(f"{path}: permission denied; make the file readable") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc}); check the file") from exc
    # A lone BOM is what Excel writes for an empty sheet.
    if head in (b"", codecs.BOM_UTF8):
        raise _empty(path, kind)


def _pick_columns(
    names: list[str], path: Path, kind: _Kind
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
        base = _DUPLICATED_SUFFIX.sub("", name).strip()
        if base in DEVICE_NAME_COLUMNS:
            by_role[_NAME].append(name)
        elif base in NICKNAME_COLUMNS:
            by_role[_NICK].append(name)
        else:
            ignored.append(name)
    for role, aliases in ((_NAME, DEVICE_NAME_COLUMNS), (_NICK, NICKNAME_COLUMNS)):
        if len(by_role[role]) > 1:
            found = ", ".join(_DUPLICATED_SUFFIX.sub("", n) for n in by_role[role])
            raise InputError(
                f"{path}: several {role} columns ({found}); keep exactly one of "
                f"{', '.join(aliases)}"
            )
    if not by_role[_NAME]:
        shown = ", ".join(repr(n) for n in names[:10]) or "none"
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


def _empty(path: Path, kind: _Kind) -> InputError:
    if kind == "csv":
        return InputError(
            f"{path}: the file is empty; expected a header line with a DeviceName column"
        )
    return InputError(f"{path}: the file is empty; export the Parquet file again")


@contextlib.contextmanager
def _translating(path: Path, kind: _Kind) -> Iterator[None]:
    """Turn polars and OS errors into one-line :class:`InputError` messages."""
    try:
        yield
    except pl_exc.NoDataError as exc:
        raise _empty(path, kind) from exc
    except pl_exc.ColumnNotFoundError as exc:
        raise InputError(
            f"{path}: a needed column is missing ({_first_line(exc)}); check the header line"
        ) from exc
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file; check the path") from exc
    except PermissionError as exc:
        raise InputError(f"{path}: permission denied; make the file readable") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc}); check the file") from exc
    except (pl_exc.PolarsError, pl_exc.PanicException) as exc:
        raise _describe_polars_error(exc, path, kind) from exc


def _describe_polars_error(exc: BaseException, path: Path, kind: _Kind) -> InputError:
    detail = _first_line(exc)
    if "utf-8" in detail.lower() or "utf8" in detail.lower():
        where = _first_non_utf8_line(path) if kind == "csv" else None
        at = f" (first bad byte on line {where})" if where else ""
        return InputError(
            f"{path}: the file is not UTF-8 text{at}; save it as UTF-8 (Excel: CSV UTF-8)"
        )
    if kind == "csv":
        return InputError(
            f"{path}: malformed CSV ({detail}); check the quoting and that no row has more "
            "fields than the header"
        )
    return InputError(f"{path}: not a readable Parquet file ({detail}); export it again or use CSV")


def _first_line(exc: BaseException) -> str:
    # Polars messages run over several lines of hints; the operator needs the first one.
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _first_non_utf8_line(path: Path) -> int | None:
    """The 1-based line holding the first byte that is not UTF-8 (an error path only)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as err:
                    return line + chunk[: err.start].count(b"\n")
                line += chunk.count(b"\n")
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return line
    except OSError:
        return None
    return None


# --------------------------------------------------------------------------- validation


def validate_frame(frame: pl.DataFrame, *, ignored_columns: tuple[str, ...] = ()) -> InputTable:
    """Validate rows already read: ``line`` (integer), ``DeviceName`` and ``Nickname`` (strings).

    This is the whole of :func:`read_devices` after reading, for callers (and tests) that
    have the rows in memory already.
    """
    name, nick = pl.col(_NAME), pl.col(_NICK)
    # An empty cell means "no value", whether written ,, (null) or "" (empty string).
    no_name = name.is_null() | (name == "")
    no_nick = nick.is_null() | (nick == "")
    frame = frame.select(pl.col(_LINE).cast(pl.Int64), name.cast(pl.String), nick.cast(pl.String))
    # Eager and flat on purpose: one pass computes four boolean columns and the frames
    # below share the string buffers; a lazy plan with rewritten string columns peaked
    # about 100 MB higher on a million rows.
    flags = frame.select(
        (no_name & no_nick).alias("_blank"),
        name.str.contains(DEVICE_NAME_PATTERN).fill_null(False).alias("_name_ok"),
        (
            no_nick
            | (
                nick.str.contains(_NICKNAME_PATTERN)
                & (nick.str.len_chars() + nick.str.count_matches(_CJK_PATTERN)).is_between(
                    NICKNAME_MIN, NICKNAME_MAX
                )
            )
        ).alias("_nick_ok"),
        (name.is_first_distinct() | no_name).alias("_first"),
    )
    ok = flags.select(
        pl.col("_name_ok") & pl.col("_nick_ok") & pl.col("_first") & ~pl.col("_blank")
    ).to_series()
    blank = flags.get_column("_blank")
    valid = frame.filter(ok).with_columns(_empty_to_null(nick))
    bad = pl.concat([frame, flags], how="horizontal").filter(~ok & ~blank)
    bad = bad.with_columns(_empty_to_null(name), _empty_to_null(nick))
    dup_names = bad.filter(~pl.col("_first")).get_column(_NAME).unique()
    # Only duplicates need the line of the first occurrence: look up just those names.
    firsts = (
        frame.filter(name.is_in(dup_names.implode()))
        .group_by(_NAME)
        .agg(pl.col(_LINE).min().alias("_first_line"))
    )
    bad = bad.join(firsts, on=_NAME, how="left", maintain_order="left")
    reasons = [
        _reason(*row)
        for row in bad.select(
            _NAME, _NICK, "_name_ok", "_nick_ok", "_first", "_first_line"
        ).iter_rows()
    ]
    rejected = bad.select(_LINE, _NAME, _NICK).with_columns(
        pl.Series(_REASON, reasons, dtype=pl.String)
    )
    return InputTable(
        valid=valid,
        rejected=rejected,
        total=frame.height - int(blank.sum()),
        ignored_columns=ignored_columns,
    )


def _empty_to_null(col: pl.Expr) -> pl.Expr:
    return pl.when(col == "").then(None).otherwise(col).alias(col.meta.output_name())


def _reason(
    name: str | None,
    nick: str | None,
    name_ok: bool,
    nick_ok: bool,
    first: bool,
    first_line: int | None,
) -> str:
    reasons: list[str] = []
    if not name_ok:
        reasons.append(_device_name_reason(name or ""))
    elif not first and first_line is not None:
        reasons.append(f"duplicate of line {first_line}")
    if not nick_ok and nick is not None:
        reasons.append(_nickname_reason(nick))
    return "; ".join(reasons) or "rejected"


def _device_name_reason(value: str) -> str:
    # The polars pattern and naming.py encode the same rule; naming.py words the reason.
    return device_name_problem(value) or "DeviceName is not valid"


def _nickname_reason(value: str) -> str:
    if value.isspace():
        return "Nickname is only whitespace; leave the cell empty for no nickname"
    return nickname_problem(value) or "Nickname is not valid"


# --------------------------------------------------------------------------- outputs


def write_rejects(rejected: pl.DataFrame, path: Path) -> None:
    """Write the rejected rows as CSV (header ``line,DeviceName,Nickname,reason``), atomically.

    The rows go to a temporary file in the same directory, which is then renamed over
    ``path``: a reader never sees half a file. Raises :class:`OutputError` on failure.
    """
    frame = rejected.select(REJECTS_COLUMNS)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        # O_EXCL: never write through a file (or link) someone else put there.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            frame.write_csv(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except (OSError, pl_exc.PolarsError) as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else _first_line(exc)
        raise OutputError(
            f"{path}: cannot write the rejects file ({why}); check the directory exists "
            "and is writable"
        ) from exc


def fingerprint(valid: pl.DataFrame) -> str:
    """SHA-256 (hex) of the (DeviceName, Nickname) sequence of ``valid``, in order.

    Line numbers and other columns do not count, so re-saving the file with another layout
    keeps the fingerprint. Each value is length-prefixed and a missing Nickname is marked
    apart from any text, so two different sequences cannot encode to the same bytes.
    """
    name, nick = pl.col(_NAME), pl.col(_NICK)
    encoded = pl.concat_str(
        name.str.len_bytes().cast(pl.String),
        pl.lit(":"),
        name,
        pl.when(nick.is_null())
        .then(pl.lit("-"))
        .otherwise(
            pl.concat_str(pl.lit("+"), nick.str.len_bytes().cast(pl.String), pl.lit(":"), nick)
        ),
    ).str.join("")
    digest = hashlib.sha256(_FINGERPRINT_DOMAIN)
    for chunk in valid.select(name.fill_null(""), nick).iter_slices(_FINGERPRINT_SLICE):
        text = chunk.select(encoded).item()
        digest.update(text.encode("utf-8"))
    return digest.hexdigest()


#: For readers of other layouts (the import's input): the same checks and messages.
file_kind = _kind_of
check_readable = _check_readable
reading_errors = _translating
