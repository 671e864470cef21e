"""The secret scan every socket test ends with finds a secret wherever it sits."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st
from socket_rig import find_any

_SECRET = st.text(string.ascii_letters + string.digits + "-_", min_size=8, max_size=40)


@given(
    secrets=st.sets(_SECRET, min_size=1, max_size=30),
    before=st.binary(max_size=200),
    after=st.binary(max_size=200),
    pick=st.integers(0, 29),
)
def test_a_secret_is_found_inside_any_bytes(
    secrets: set[str], before: bytes, after: bytes, pick: int
) -> None:
    needles = {s.encode() for s in secrets}
    secret = sorted(needles)[pick % len(needles)]
    assert find_any(before + secret + after, needles) is not None


@given(secrets=st.sets(_SECRET, min_size=1, max_size=30), data=st.binary(max_size=400))
def test_nothing_is_found_where_no_secret_is(secrets: set[str], data: bytes) -> None:
    needles = {s.encode() for s in secrets}
    expected = any(n in data for n in needles)
    assert (find_any(data, needles) is not None) == expected
