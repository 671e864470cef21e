"""How much of an input file is read, and how much of it a message or a rejects file repeats.

Limits (:class:`ReadLimits`, from ``PROVISIONER_MAX_ROWS`` and ``PROVISIONER_MAX_CELL``):
more rows than ``max_rows`` is refused before loading (Parquet: from its metadata); a cell
longer than ``max_cell_chars`` is dropped before it is collected, and only its length is
kept, so the reader can reject the row with that length (:mod:`provisioner.inputs.loading`).

Anything from a file that is repeated (in a message, a log line or a rejects file) is cut
to :data:`ECHO_CHARS` characters: :func:`short` for Python strings, :func:`echo_cell` for a
polars column. Both readers (``run``/``validate`` and ``import``) use these.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import partial
from typing import Final

import polars as pl

from provisioner.errors import UsageError

__all__ = [
    "DEFAULT_MAX_CELL",
    "DEFAULT_MAX_ROWS",
    "ECHO_CHARS",
    "MAX_CELL_ENV",
    "MAX_ROWS_ENV",
    "MIN_CELL",
    "ReadLimits",
    "echo_cell",
    "short",
]

#: The most characters of anything from a file that a message or a rejects file repeats.
ECHO_CHARS: Final = 40
MAX_ROWS_ENV: Final = "PROVISIONER_MAX_ROWS"
MAX_CELL_ENV: Final = "PROVISIONER_MAX_CELL"
DEFAULT_MAX_ROWS: Final = 10_000_000
DEFAULT_MAX_CELL: Final = 1_024
#: The longest valid cell (Nickname, Sn: 64): a smaller cell limit would reject valid rows.
MIN_CELL: Final = 64


def short(text: str, limit: int = ECHO_CHARS) -> str:
    """``text``, or its first ``limit`` characters and an ellipsis."""
    return text if len(text) <= limit else text[:limit] + "…"


def echo_cell(col: pl.Expr) -> pl.Expr:
    """A cell as a rejects file or a message may repeat it: at most 40 characters, then "…"."""
    return (
        pl.when(col.str.len_chars() > ECHO_CHARS)
        .then(pl.concat_str(col.str.head(ECHO_CHARS), pl.lit("…")))
        .otherwise(col)
        .alias(col.meta.output_name())
    )


def _env_limit(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise UsageError(
            f"{name} must be a whole number of at least {minimum}, got {short(raw)!r}; "
            "fix or unset it"
        )
    return value


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """How much of an input file is read. The defaults come from the environment when the
    object is made: ``PROVISIONER_MAX_ROWS`` (10,000,000) and ``PROVISIONER_MAX_CELL``
    (1,024 characters, at least 64)."""

    max_rows: int = field(default_factory=partial(_env_limit, MAX_ROWS_ENV, DEFAULT_MAX_ROWS, 1))
    max_cell_chars: int = field(
        default_factory=partial(_env_limit, MAX_CELL_ENV, DEFAULT_MAX_CELL, MIN_CELL)
    )

    def __post_init__(self) -> None:
        if self.max_rows < 1 or self.max_cell_chars < MIN_CELL:
            raise ValueError(f"max_rows must be >= 1 and max_cell_chars >= {MIN_CELL}")
