"""The fingerprint of a run's device list: the part of a run's identity that is its input.

:func:`fingerprint` of the valid rows goes into the run's key (with the product, instance,
endpoint and kind), so running the same rows again, however the file is laid out, finds
the run that already has them.
"""

from __future__ import annotations

import hashlib
from typing import Final

import polars as pl

__all__ = ["fingerprint"]

_NAME: Final = "DeviceName"
_NICK: Final = "Nickname"
_FINGERPRINT_DOMAIN: Final = b"provisioner.fingerprint.v1\n"
_FINGERPRINT_SLICE: Final = 100_000


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
