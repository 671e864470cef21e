"""IoT Platform naming rules, as pure functions and as the regular expressions behind them.

One rule per field, decided where the reference disagrees with itself:

* DeviceName: 4-32 characters of ``A-Z a-z 0-9 - _ @ . :``.
* Nickname (alias): letters, digits, ``_`` and Chinese characters; a Chinese
  character counts as two. 4-64 counted characters for BatchCheckDeviceNames and
  RegisterDevice, 1-64 for ImportDevice (``min_length=1``).
* DeviceSecret (ImportDevice): 1-32 characters of ``A-Z a-z 0-9 - _ @ . :``.
* Sn (ImportDevice): 1-64 characters of letters, digits and ``_``.
* ProductName: 4-30 counted characters of letters, digits, ``_`` and Chinese characters
  (two each).

Each checker returns ``None`` for a valid value or a short reason a person understands.
A reason quotes at most the first character that breaks the rule, and not even that with
``quote=False`` (used for the cells of a migration file, which may be misplaced secrets).
Readers that pass only a prefix of a long value give its true length as ``length`` (or
``counted``), so the reason states the real length without the whole value in memory;
readers that checked the characters vectorised pass ``chars_ok`` and need no value at all.
The patterns are shared with the vectorised validation of input files and with the
emulator, so client and emulator cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "CJK_CHARS",
    "DEVICE_NAME_CHARS",
    "DEVICE_NAME_MAX",
    "DEVICE_NAME_MIN",
    "DEVICE_NAME_PATTERN",
    "NICKNAME_MAX",
    "NICKNAME_MIN",
    "counted_length",
    "device_name_problem",
    "device_secret_problem",
    "nickname_problem",
    "product_name_problem",
    "sn_problem",
]

DEVICE_NAME_MIN = 4
DEVICE_NAME_MAX = 32
DEVICE_NAME_CHARS = r"A-Za-z0-9\-_@.:"
DEVICE_NAME_PATTERN = rf"^[{DEVICE_NAME_CHARS}]{{{DEVICE_NAME_MIN},{DEVICE_NAME_MAX}}}$"

NICKNAME_MIN = 4
NICKNAME_MAX = 64
#: CJK Unified Ideographs (the basic block), counted as two characters each.
CJK_CHARS = "\u4e00-\u9fff"

_DEVICE_NAME_RE = re.compile(rf"[{DEVICE_NAME_CHARS}]{{{DEVICE_NAME_MIN},{DEVICE_NAME_MAX}}}")
_DEVICE_NAME_BAD_CHAR = re.compile(rf"[^{DEVICE_NAME_CHARS}]")
_WORD_CJK_RE = re.compile(rf"[A-Za-z0-9_{CJK_CHARS}]*")
_WORD_BAD_CHAR = re.compile(r"[^A-Za-z0-9_]")
_CJK_RE = re.compile(f"[{CJK_CHARS}]")


def counted_length(value: str) -> int:
    """Length as IoT Platform counts it: a Chinese character counts as two."""
    return len(value) + len(_CJK_RE.findall(value))


def _first_bad(value: str, bad: re.Pattern[str]) -> str:
    match = bad.search(value)
    return repr(match.group(0)) if match else "?"


def device_name_problem(
    value: str,
    *,
    length: int | None = None,
    quote: bool = True,
    chars_ok: bool | None = None,
) -> str | None:
    """Why ``value`` is not a DeviceName, or None. ``length``: the true length of a value
    of which ``value`` is a prefix; ``quote=False`` leaves the offending character out;
    ``chars_ok``: whether every character is allowed, checked already (then ``value`` is
    not looked at, and may be empty)."""
    n = len(value) if length is None else length
    if chars_ok is None:
        valid = n == len(value) and _DEVICE_NAME_RE.fullmatch(value) is not None
    else:
        valid = chars_ok and DEVICE_NAME_MIN <= n <= DEVICE_NAME_MAX
    if valid:
        return None
    if n == 0:
        return "DeviceName is empty"
    if not DEVICE_NAME_MIN <= n <= DEVICE_NAME_MAX:
        return f"DeviceName must be {DEVICE_NAME_MIN}-{DEVICE_NAME_MAX} characters, got {n}"
    where = f" ({_first_bad(value, _DEVICE_NAME_BAD_CHAR)})" if quote and chars_ok is None else ""
    return f"DeviceName has a character outside A-Z a-z 0-9 - _ @ . :{where}"


def nickname_problem(
    value: str,
    *,
    min_length: int = NICKNAME_MIN,
    counted: int | None = None,
    quote: bool = True,
    chars_ok: bool | None = None,
) -> str | None:
    """Why ``value`` is not a Nickname, or None. ``counted``: the true counted length of a
    value of which ``value`` is a prefix; ``quote`` and ``chars_ok`` as for
    :func:`device_name_problem`."""
    # fullmatch, not match: "$" would let a trailing newline through.
    allowed = _WORD_CJK_RE.fullmatch(value) is not None if chars_ok is None else chars_ok
    if not allowed:
        where = ""
        if quote and chars_ok is None:
            bad = next(c for c in value if not _WORD_CJK_RE.fullmatch(c))
            where = f" ({bad!r} is not allowed)"
        return f"Nickname may hold only letters, digits, _ and Chinese characters{where}"
    n = counted_length(value) if counted is None else counted
    if not min_length <= n <= NICKNAME_MAX:
        return f"Nickname must be {min_length}-{NICKNAME_MAX} characters (Chinese count 2), got {n}"
    return None


@dataclass(frozen=True, slots=True)
class _TextRule:
    """1-``maximum`` characters, none of them matched by ``bad_char``; the length first.
    The reasons never quote the value (a DeviceSecret is a secret)."""

    field: str
    maximum: int
    bad_char: re.Pattern[str]
    chars_reason: str

    def problem(self, value: str, length: int | None, chars_ok: bool | None) -> str | None:
        n = len(value) if length is None else length
        if not 1 <= n <= self.maximum:
            return f"{self.field} must be 1-{self.maximum} characters, got {n}"
        bad = self.bad_char.search(value) is not None if chars_ok is None else not chars_ok
        return f"{self.field} {self.chars_reason}" if bad else None


_DEVICE_SECRET = _TextRule(
    "DeviceSecret", 32, _DEVICE_NAME_BAD_CHAR, "has a character outside A-Z a-z 0-9 - _ @ . :"
)
_SN = _TextRule("Sn", 64, _WORD_BAD_CHAR, "may hold only letters, digits and _")


def device_secret_problem(
    value: str, *, length: int | None = None, chars_ok: bool | None = None
) -> str | None:
    """Why ``value`` is not a DeviceSecret, or None (``length``, ``chars_ok``: as for
    :func:`device_name_problem`)."""
    return _DEVICE_SECRET.problem(value, length, chars_ok)


def sn_problem(
    value: str, *, length: int | None = None, chars_ok: bool | None = None
) -> str | None:
    """Why ``value`` is not an Sn, or None (``length``, ``chars_ok``: as for
    :func:`device_name_problem`)."""
    return _SN.problem(value, length, chars_ok)


def product_name_problem(value: str) -> str | None:
    if not _WORD_CJK_RE.fullmatch(value):
        return "ProductName may hold only letters, digits, _ and Chinese characters"
    n = counted_length(value)
    if not 4 <= n <= 30:
        return f"ProductName must be 4-30 characters (Chinese count 2), got {n}"
    return None
