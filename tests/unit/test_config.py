"""provisioner.config: precedence, endpoint normalization, and a secret that never shows."""

from __future__ import annotations

import pytest

from provisioner.config import ApiSettings, Credentials, load_api_settings, normalize_endpoint
from provisioner.errors import UsageError

KEYS = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIexample",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s3cr3tVALUE",
}


def test_defaults() -> None:
    settings = load_api_settings(env=KEYS)
    assert settings.credentials.access_key_id == "LTAIexample"
    assert settings.endpoint == "https://iot.cn-shanghai.aliyuncs.com"
    assert settings.host == "iot.cn-shanghai.aliyuncs.com"
    assert settings.region == "cn-shanghai"
    assert settings.iot_instance_id is None
    assert settings.signature_version == "v1"
    assert settings.qps_scale == 1.0
    assert settings.verify_tls is True


def test_environment_then_arguments() -> None:
    env = {
        **KEYS,
        "PROVISIONER_REGION": "ap-southeast-1",
        "PROVISIONER_IOT_INSTANCE_ID": "iot-env",
        "PROVISIONER_SIGNATURE_VERSION": "V3",
        "PROVISIONER_QPS_SCALE": "0.5",
    }
    from_env = load_api_settings(env=env)
    assert from_env.endpoint == "https://iot.ap-southeast-1.aliyuncs.com"
    assert from_env.iot_instance_id == "iot-env"
    assert from_env.signature_version == "v3"
    assert from_env.qps_scale == 0.5
    from_args = load_api_settings(
        endpoint="http://127.0.0.1:8080/",
        region="cn-beijing",
        iot_instance_id="iot-arg",
        signature_version="v1",
        qps_scale=2.0,
        env={**env, "PROVISIONER_ENDPOINT": "https://ignored.example"},
    )
    assert from_args.endpoint == "http://127.0.0.1:8080"
    assert from_args.host == "127.0.0.1:8080"
    assert from_args.region == "cn-beijing"
    assert from_args.iot_instance_id == "iot-arg"
    assert from_args.signature_version == "v1"
    assert from_args.qps_scale == 2.0
    assert load_api_settings(env={**KEYS, "PROVISIONER_ENDPOINT": "emu.local:9000"}).endpoint == (
        "https://emu.local:9000"
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "ALIBABA_CLOUD_ACCESS_KEY_ID"),
        ({"ALIBABA_CLOUD_ACCESS_KEY_ID": "x"}, "ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
        (
            {"ALIBABA_CLOUD_ACCESS_KEY_ID": " ", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "y"},
            "ALIBABA_CLOUD_ACCESS_KEY_ID",
        ),
    ],
)
def test_missing_credentials_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(UsageError, match=variable) as info:
        load_api_settings(env=env)
    assert "\n" not in str(info.value)


def test_secret_never_shown() -> None:
    settings = load_api_settings(env=KEYS)
    for text in (repr(settings), str(settings), repr(settings.credentials)):
        assert "s3cr3tVALUE" not in text
    assert "LTAIexample" in repr(settings.credentials)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("iot.cn-shanghai.aliyuncs.com", "https://iot.cn-shanghai.aliyuncs.com"),
        ("https://iot.cn-shanghai.aliyuncs.com/", "https://iot.cn-shanghai.aliyuncs.com"),
        ("HTTP://LocalHost:8080", "http://localhost:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("  http://emulator  ", "http://emulator"),
    ],
)
def test_normalize_endpoint(given: str, expected: str) -> None:
    assert normalize_endpoint(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        "",
        "ftp://iot.example.com",
        "https://",
        "https://iot example.com",
        "https://iot.example.com/path",
        "https://iot.example.com/?a=b",
        "https://user:pw@iot.example.com",
        "https://iot.example.com:99999",
        "https://iot.example.com:port",
        "https://-bad-.example.com",
    ],
)
def test_malformed_endpoints(given: str) -> None:
    with pytest.raises(UsageError, match="endpoint") as info:
        normalize_endpoint(given)
    assert "pw" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "env_extra", "match"),
    [
        ({"region": "cn shanghai"}, {}, "region"),
        ({"signature_version": "v2"}, {}, "signature version"),
        ({}, {"PROVISIONER_QPS_SCALE": "fast"}, "PROVISIONER_QPS_SCALE"),
        ({"qps_scale": 0.0}, {}, "qps scale"),
        ({"endpoint": "ftp://x"}, {}, "endpoint"),
    ],
)
def test_bad_settings(kwargs: dict[str, object], env_extra: dict[str, str], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        load_api_settings(env={**KEYS, **env_extra}, **kwargs)  # type: ignore[arg-type]


def test_settings_validation() -> None:
    creds = Credentials("id", "secret")
    with pytest.raises(UsageError, match="max attempts"):
        ApiSettings(creds, "https://x", max_attempts=0)
    with pytest.raises(UsageError, match="timeout"):
        ApiSettings(creds, "https://x", timeout=0)
    with pytest.raises(UsageError, match="AccessKey secret"):
        Credentials("id", "")


def test_timeout_and_deadline() -> None:
    defaults = load_api_settings(env=KEYS)
    assert defaults.timeout == 60.0
    assert defaults.deadline_seconds is None
    assert defaults.insecure_http is False
    env = {**KEYS, "PROVISIONER_TIMEOUT": "12.5", "PROVISIONER_DEADLINE": "3600"}
    from_env = load_api_settings(env=env)
    assert (from_env.timeout, from_env.deadline_seconds) == (12.5, 3600.0)
    from_args = load_api_settings(timeout=5, deadline=60, env=env)
    assert (from_args.timeout, from_args.deadline_seconds) == (5, 60)


@pytest.mark.parametrize(
    ("kwargs", "env_extra", "match"),
    [
        ({}, {"PROVISIONER_TIMEOUT": "soon"}, "PROVISIONER_TIMEOUT"),
        ({}, {"PROVISIONER_DEADLINE": "1h"}, "PROVISIONER_DEADLINE"),
        ({"timeout": 0.0}, {}, "timeout"),
        ({"timeout": float("inf")}, {}, "timeout"),
        ({"timeout": float("nan")}, {}, "timeout"),
        ({"deadline": 0.0}, {}, "deadline"),
        ({"deadline": -5.0}, {}, "deadline"),
    ],
)
def test_bad_timeouts(kwargs: dict[str, object], env_extra: dict[str, str], match: str) -> None:
    with pytest.raises(UsageError, match=match) as info:
        load_api_settings(env={**KEYS, **env_extra}, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_the_credential_secrets_are_listed_for_scrubbing() -> None:
    assert load_api_settings(env=KEYS).credentials.secret_values() == ("s3cr3tVALUE",)
