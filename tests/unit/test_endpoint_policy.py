"""Plain HTTP only to this machine, unless --insecure-http: generated hosts of every kind.

Loopback is 127.0.0.0/8, ``::1`` (in any spelling, and IPv4-mapped) and ``localhost``;
everything else, names that merely look local included, needs ``--insecure-http``
(or ``PROVISIONER_INSECURE_HTTP=1``) over ``http://`` and then logs ``api.insecure_http``.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from provisioner.config import check_endpoint_security, is_loopback_host, load_api_settings
from provisioner.errors import EXIT_USAGE, UsageError

KEYS = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIexample",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s3cr3tVALUE",
}

LOOPBACK_V4 = st.integers(0, 2**24 - 1).map(lambda n: str(ipaddress.IPv4Address((127 << 24) + n)))
LOOPBACK_V6 = st.sampled_from(
    ["::1", "0:0:0:0:0:0:0:1", "0000:0000:0000:0000:0000:0000:0000:0001", "::0:1"]
)
MAPPED_LOOPBACK = LOOPBACK_V4.map(lambda a: f"::ffff:{a}")
LOCALHOST = st.sampled_from(["localhost", "LOCALHOST", "LocalHost"])

OTHER_V4 = (
    st.integers(0, 2**32 - 1)
    .map(ipaddress.IPv4Address)
    .filter(lambda a: not a.is_loopback)
    .map(str)
)
OTHER_V6 = (
    st.integers(0, 2**128 - 1)
    .map(ipaddress.IPv6Address)
    .filter(lambda a: not a.is_loopback and not (a.ipv4_mapped and a.ipv4_mapped.is_loopback))
    .map(str)
)
LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
NAMES = st.lists(LABEL, min_size=1, max_size=4).map(".".join).filter(lambda n: n != "localhost")
# Names that look local but are not the loopback as written.
LOOKALIKES = st.sampled_from(
    [
        "localhost.example.com",
        "127.0.0.1.nip.io",
        "mylocalhost",
        "localhost-1",
        "127.1",
        "2130706433",
        "0x7f000001",
        "loopback",
    ]
)


def _url(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}" + (f":{port}" if port is not None else "")


PORTS = st.one_of(st.none(), st.integers(1, 65535))


@settings(max_examples=200, deadline=None)
@given(host=st.one_of(LOOPBACK_V4, LOOPBACK_V6, MAPPED_LOOPBACK, LOCALHOST), port=PORTS)
def test_plain_http_to_this_machine_is_allowed(host: str, port: int | None) -> None:
    assert is_loopback_host(host)
    settings_ = load_api_settings(endpoint=_url(host, port), env=KEYS)
    assert settings_.endpoint.startswith("http://")
    assert not settings_.insecure_http
    assert check_endpoint_security(settings_.endpoint, insecure_http=False) == "loopback"


@settings(max_examples=300, deadline=None)
@given(host=st.one_of(OTHER_V4, OTHER_V6, NAMES, LOOKALIKES), port=PORTS)
def test_plain_http_elsewhere_needs_insecure_http(host: str, port: int | None) -> None:
    assert not is_loopback_host(host)
    endpoint = _url(host, port)
    with pytest.raises(UsageError) as info:
        load_api_settings(endpoint=endpoint, env=KEYS)
    message = str(info.value)
    assert info.value.exit_code == EXIT_USAGE
    assert "\n" not in message
    assert "https://" in message
    assert "--insecure-http" in message
    assert "s3cr3tVALUE" not in message

    with capture_logs() as logs:
        allowed = load_api_settings(endpoint=endpoint, insecure_http=True, env=KEYS)
    assert allowed.insecure_http
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["api.insecure_http"]
    by_env = load_api_settings(endpoint=endpoint, env={**KEYS, "PROVISIONER_INSECURE_HTTP": "1"})
    assert by_env.insecure_http
    # An explicit False on the command line is not overridden by nothing.
    with pytest.raises(UsageError):
        load_api_settings(endpoint=endpoint, insecure_http=False, env=KEYS)


@settings(max_examples=100, deadline=None)
@given(host=st.one_of(OTHER_V4, NAMES, LOOPBACK_V4), port=PORTS)
def test_https_is_always_fine_and_never_warns(host: str, port: int | None) -> None:
    endpoint = _url(host, port).replace("http://", "https://")
    with capture_logs() as logs:
        assert load_api_settings(endpoint=endpoint, env=KEYS).endpoint.startswith("https://")
    assert not [e for e in logs if e["event"] == "api.insecure_http"]


def test_the_default_endpoint_and_a_bare_host_are_https() -> None:
    assert load_api_settings(env=KEYS).endpoint.startswith("https://")
    assert load_api_settings(endpoint="10.0.0.5:8080", env=KEYS).endpoint == (
        "https://10.0.0.5:8080"
    )


@pytest.mark.parametrize("value", ["maybe", "2", "yes please"])
def test_a_bad_insecure_http_variable_is_a_usage_error(value: str) -> None:
    with pytest.raises(UsageError, match="PROVISIONER_INSECURE_HTTP"):
        load_api_settings(env={**KEYS, "PROVISIONER_INSECURE_HTTP": value})


@pytest.mark.parametrize("value", ["0", "false", "no", "off", ""])
def test_a_false_insecure_http_variable_refuses(value: str) -> None:
    env = {**KEYS, "PROVISIONER_INSECURE_HTTP": value}
    with pytest.raises(UsageError, match="--insecure-http"):
        load_api_settings(endpoint="http://192.0.2.10", env=env)
