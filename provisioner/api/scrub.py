"""Making text from the server safe to show: no secret in any encoding, no control character.

Everything a server sends (error messages, ``Code``, ``RequestId``, free text of a
successful answer) can reach a terminal, a log, the journal or a rejects file. Two rules
hold for all of it:

* **No secret survives, in any of its encodings.** A gateway may echo a request parameter
  raw, percent-encoded (either hex case, ``+`` for a space, or percent-encoded twice as in
  a string-to-sign), JSON-escaped (``\\u00XX``, ``\\"``...) or as HTML entities, and a mix of
  these within one value. Secrets (and values holding ``% + \\ &``, which read two ways
  once encoded) are searched with a pattern per value in which each character may appear
  raw or in any of those encodings, at every offset. The other values (the 10,000
  DeviceNames of a BatchCheckDeviceNames call) are found in the decoded forms of the
  message, each decoded character remembering where it came from: linear per value, no
  pattern to compile. Every span found is replaced with ``<redacted>``.
* **No control character survives.** C0 and C1 controls (ESC, BEL, NUL...), DEL, Unicode
  format characters (bidi overrides, zero-width characters) and lone surrogates are
  removed; line breaks and tabs become spaces, and whitespace runs collapse to one space,
  so every message is one line (:func:`clean_text`).

``Code`` and ``RequestId`` are passed on only when they match a strict pattern and hold no
secret (:func:`safe_code`, :func:`safe_request_id`); otherwise a neutral placeholder stands
in. The AccessKey secret is always in the set of secrets (see
:meth:`provisioner.config.Credentials.secret_values`).
"""

from __future__ import annotations

import codecs
import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "PLACEHOLDER",
    "REDACTED",
    "clean_text",
    "contains_any",
    "safe_code",
    "safe_request_id",
    "scrub_message",
]

REDACTED = "<redacted>"
#: Stands in for a Code or RequestId that is malformed or holds a secret.
PLACEHOLDER = "<unreadable>"

_MAX_MESSAGE = 300
# A message longer than this is not shown at all: it is not a gateway message but an
# echo of something, and scanning it for every redacted value would cost too much.
_MAX_SCAN = 16_384
# Secrets shorter than this are not searched in a Code or RequestId: a code like
# "iot.device.AlreadyExistedDeviceName" would turn unreadable for a one-letter secret.
_MIN_SECRET_IN_ID = 4

_CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,79}")
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9-]{1,64}")
_STRING_TO_SIGN_RE = re.compile(r"\s*server\s+string\s*to\s*sign\s*is.*", re.IGNORECASE | re.DOTALL)

# Characters removed outright: controls, format characters (bidi overrides, zero-width
# joiners...) and surrogates (a JSON "\ud800" decodes to one; it cannot be encoded).
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})


def clean_text(text: str) -> str:
    """``text`` on one line without control or format characters.

    Whitespace characters (line breaks, tabs, U+2028...) become spaces and runs of
    spaces collapse to one; other control and format characters are removed.
    """
    if not (text.isascii() and text.isprintable()):
        text = "".join(_clean_char(c) for c in text)
    return " ".join(text.split())


def _clean_char(c: str) -> str:
    if c.isspace():
        return " "
    if unicodedata.category(c) in _DROP_CATEGORIES:
        return ""
    return c


# --- finding values in every encoding -----------------------------------------------


@dataclass(frozen=True, slots=True)
class _Decoded:
    """A decoded form of a message: each character with the span it came from."""

    text: str
    starts: list[int]
    ends: list[int]


_HEX2 = "[0-9A-Fa-f]{2}"
_PCT = rf"(?P<pct>(?:%{_HEX2})+)"
_PCT2 = rf"(?P<pct2>(?:%25{_HEX2})+)"
_PLUS = r"(?P<plus>\+)"
_JSON_U = r"(?P<uni>(?:\\u[0-9A-Fa-f]{4})+)"
_JSON_SHORT = r"(?P<jsc>\\[\"\\/bfnrt])"
_HTML = r"(?P<ent>&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|amp|lt|gt|quot|apos);)"

_JSON_SHORT_MAP = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_HTML_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}

# Each family on its own, for an echo in exactly one encoding (where another family's
# decoding would misread it: a JSON-escaped "%41" must not turn into "A"), and all of
# them at once, for an echo that mixes them character by character.
_FAMILIES: list[tuple[re.Pattern[str], bool]] = [
    (re.compile(_PCT), False),  # percent-encoded, '+' is a plus
    (re.compile(f"{_PCT}|{_PLUS}"), True),  # form-encoded, '+' is a space
    (re.compile(f"{_PCT2}|{_PCT}"), False),  # percent-encoded twice (a string-to-sign)
    (re.compile(f"{_PCT2}|{_PCT}|{_PLUS}"), True),
    (re.compile(f"{_JSON_U}|{_JSON_SHORT}"), False),  # JSON-escaped
    (re.compile(_HTML), False),  # HTML or XML entities
    (re.compile(f"{_PCT2}|{_PCT}|{_PLUS}|{_JSON_U}|{_JSON_SHORT}|{_HTML}"), True),
]


def _decode(text: str, pattern: re.Pattern[str], plus_is_space: bool) -> _Decoded:
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []

    def emit(decoded: str, start: int, end: int) -> None:
        for c in decoded:
            chars.append(c)
            starts.append(start)
            ends.append(end)

    pos = 0
    for match in pattern.finditer(text):
        for i in range(pos, match.start()):
            emit(text[i], i, i + 1)
        kind = match.lastgroup
        token = match.group()
        if kind == "pct":
            _emit_bytes(token, match.start(), 3, emit)
        elif kind == "pct2":
            _emit_bytes(token, match.start(), 5, emit)
        elif kind == "plus":
            emit(" " if plus_is_space else "+", match.start(), match.end())
        elif kind == "uni":
            _emit_utf16(token, match.start(), emit)
        elif kind == "jsc":
            emit(_JSON_SHORT_MAP[token[1]], match.start(), match.end())
        else:
            emit(_entity(token), match.start(), match.end())
        pos = match.end()
    for i in range(pos, len(text)):
        emit(text[i], i, i + 1)
    return _Decoded("".join(chars), starts, ends)


def _emit_bytes(token: str, offset: int, width: int, emit: Callable[[str, int, int], None]) -> None:
    """UTF-8 bytes spelled ``%XX`` (``width`` 3) or ``%25XX`` (5), each character mapped to
    the span of its own bytes."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    start = offset
    for k in range(len(token) // width):
        byte = int(token[k * width + width - 2 : (k + 1) * width], 16)
        end = offset + (k + 1) * width
        out = decoder.decode(bytes([byte]))
        if out:
            emit(out, start, end)
            start = end
    rest = decoder.decode(b"", final=True)
    if rest:
        emit(rest, start, offset + len(token))


def _emit_utf16(token: str, offset: int, emit: Callable[[str, int, int], None]) -> None:
    """``\\uXXXX`` code units; a surrogate pair becomes one character spanning both."""
    units = [int(token[k + 2 : k + 6], 16) for k in range(0, len(token), 6)]
    k = 0
    while k < len(units):
        unit = units[k]
        start = offset + 6 * k
        if 0xD800 <= unit < 0xDC00 and k + 1 < len(units) and 0xDC00 <= units[k + 1] < 0xE000:
            code = 0x10000 + ((unit - 0xD800) << 10) + (units[k + 1] - 0xDC00)
            emit(chr(code), start, start + 12)
            k += 2
        else:
            emit(chr(unit), start, start + 6)
            k += 1


def _entity(token: str) -> str:
    body = token[1:-1]
    if body.startswith(("#x", "#X")):
        code = int(body[2:], 16)
    elif body.startswith("#"):
        code = int(body[1:])
    else:
        return _HTML_NAMED[body]
    return chr(code) if code <= 0x10FFFF else "\ufffd"


# A value holding one of these can be read two ways once encoded ("%00" is a percent sign
# and two zeros, or an encoded NUL): the decoded forms above pick one reading, so such a
# value, and every secret, is searched with a pattern that allows each of its characters
# in any encoding, in every reading.
_AMBIGUOUS = frozenset("%+\\&")
_JSON_SHORT_OF = {v: k for k, v in _JSON_SHORT_MAP.items()}
_HTML_NAMED_OF = {v: k for k, v in _HTML_NAMED.items()}


def _hex(byte_or_unit: int, width: int) -> str:
    """``byte_or_unit`` in hex, either case for each letter."""
    digits = f"{byte_or_unit:0{width}X}"
    return "".join(f"[{d}{d.lower()}]" if d.isalpha() else d for d in digits)


def _char_pattern(c: str) -> str:
    forms = [re.escape(c)]
    if c == " ":
        forms.append(r"\+|%2[bB]")  # form-encoded, once or twice
    forms.append("".join(f"%(?:25)?{_hex(b, 2)}" for b in c.encode("utf-8")))
    units = c.encode("utf-16-be")
    forms.append(
        "".join(
            rf"\\u{_hex(int.from_bytes(units[k : k + 2], 'big'), 4)}"
            for k in range(0, len(units), 2)
        )
    )
    if c in _JSON_SHORT_OF:
        forms.append(re.escape("\\" + _JSON_SHORT_OF[c]))
    forms.append(f"&#0*{ord(c)};")
    forms.append(f"&#[xX]0*{_hex(ord(c), 1)};")
    if c in _HTML_NAMED_OF:
        forms.append(f"&{_HTML_NAMED_OF[c]};")
    return "(?:" + "|".join(forms) + ")"


@functools.lru_cache(maxsize=256)
def _value_pattern(value: str) -> re.Pattern[str]:
    return re.compile("".join(_char_pattern(c) for c in value))


def _spans(
    text: str, values: Iterable[str], *, exhaustive: Iterable[str] = ()
) -> list[tuple[int, int]]:
    """Every span of ``text`` that is one of ``values`` or ``exhaustive`` in some encoding.

    ``exhaustive`` values (secrets) are searched with a pattern per value, at every
    offset and in every reading; ``values`` too when they hold an ambiguous character,
    the others (thousands of DeviceNames) in the decoded forms of ``text``.
    """
    patterned = {v for v in exhaustive if v}
    plain: set[str] = set()
    for value in values:
        if value:
            (patterned if _AMBIGUOUS & set(value) else plain).add(value)
    plain -= patterned
    spans: list[tuple[int, int]] = []
    for value in patterned:
        spans.extend(m.span() for m in _value_pattern(value).finditer(text) if m.end() > m.start())
    if not plain:
        return spans
    wanted = sorted(plain, key=len, reverse=True)
    forms = [_Decoded(text, list(range(len(text))), list(range(1, len(text) + 1)))]
    for pattern, plus_is_space in _FAMILIES:
        decoded = _decode(text, pattern, plus_is_space)
        if all(decoded.text != form.text for form in forms):
            forms.append(decoded)
    for form in forms:
        for value in wanted:
            at = form.text.find(value)
            while at >= 0:
                spans.append((form.starts[at], form.ends[at + len(value) - 1]))
                at = form.text.find(value, at + 1)
    return spans


def _replace(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out: list[str] = []
    pos = 0
    for start, end in merged:
        out.append(text[pos:start])
        out.append(REDACTED)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def contains_any(text: str, secrets: Iterable[str]) -> bool:
    """True when one of ``secrets`` appears in ``text`` in any encoding :func:`scrub_message`
    knows."""
    return bool(_spans(text, (), exhaustive=secrets))


def _redact(text: str, values: Sequence[str], secrets: Sequence[str]) -> str:
    return _replace(text, _spans(text, values, exhaustive=secrets))


def scrub_message(message: str, redact: Sequence[str] = (), secrets: Sequence[str] = ()) -> str:
    """A server message fit for an exception, a log or a file: one line, bounded, clean.

    The gateway's signature errors echo the string-to-sign, which holds every parameter
    value: everything from ``server string to sign is`` on is dropped. Control and format
    characters are removed first (so that one hidden inside a secret cannot split it
    from the search), then every one of ``redact`` and ``secrets`` is replaced in every
    encoding, then the text is cut to 300 characters.
    """
    text = _STRING_TO_SIGN_RE.sub("", message)
    if len(text) > _MAX_SCAN:
        return f"(a message of {len(text)} characters, not shown)"
    # Cut again once clean: a control character must not hide the marker from the cut.
    text = _redact(_STRING_TO_SIGN_RE.sub("", clean_text(text)), redact, secrets)
    if len(text) > _MAX_MESSAGE:
        # Scrubbed again: the cut and its marker must not complete a value.
        text = _redact(text[: _MAX_MESSAGE - 3] + "...", redact, secrets)
    return text


def _safe_id(value: object, pattern: re.Pattern[str], secrets: Sequence[str]) -> str | None:
    if value is None or value == "":
        return None
    text = str(value)
    if not pattern.fullmatch(text):
        return PLACEHOLDER
    if contains_any(text, [s for s in secrets if len(s) >= _MIN_SECRET_IN_ID]):
        return PLACEHOLDER
    return text


def safe_code(code: object, secrets: Sequence[str] = ()) -> str | None:
    """The ``Code`` of an answer if it looks like one (``iot.device.X``, ``Throttling.User``)
    and holds no secret; :data:`PLACEHOLDER` otherwise; ``None`` when there is none."""
    return _safe_id(code, _CODE_RE, secrets)


def safe_request_id(request_id: object, secrets: Sequence[str] = ()) -> str | None:
    """The ``RequestId`` if it looks like one (letters, digits, ``-``; at most 64) and holds
    no secret; :data:`PLACEHOLDER` otherwise; ``None`` when there is none."""
    return _safe_id(request_id, _REQUEST_ID_RE, secrets)
