"""The header names both readers accept for a column, and how a header cell is compared.

A header name is matched after trimming spaces and after dropping the ``_duplicated_N``
suffix polars gives the second and later copies of a repeated name, so that a repeated
column is seen (and refused) as a second copy rather than ignored as an unknown one.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["DEVICE_NAME_COLUMNS", "NICKNAME_COLUMNS", "header_name"]

DEVICE_NAME_COLUMNS: tuple[str, ...] = ("DeviceName", "device_name")
NICKNAME_COLUMNS: tuple[str, ...] = ("Nickname", "nickname", "DeviceNickname")

_DUPLICATED_SUFFIX: Final = re.compile(r"_duplicated_\d+$")


def header_name(column: str, *, strip: bool = True) -> str:
    """The name ``column`` was written as in the file: polars' duplicate suffix dropped,
    and (unless ``strip`` is false) surrounding spaces trimmed."""
    base = _DUPLICATED_SUFFIX.sub("", column)
    return base.strip() if strip else base
