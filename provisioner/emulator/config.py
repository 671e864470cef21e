"""Settings of the IoT Platform emulator, as one frozen value.

Everything the emulator does differently from the documented service is a knob
here: how long the asynchronous stages take, how strict the QPS limits are, which
faults are injected and how often. Defaults reproduce the real service (except
that stages take seconds, not minutes).

The AccessKey secrets are the emulated *server's* credentials: they are kept out
of ``repr`` so that a logged config never shows them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

__all__ = ["DEFAULT_ACCOUNTS", "DEFAULT_REGION", "EmulatorConfig"]

#: The AccessKey pair of the reference's examples, accepted when nothing else is configured.
DEFAULT_ACCOUNTS: Mapping[str, str] = MappingProxyType({"testid": "testsecret"})

#: Region named in ``HostId`` of gateway errors.
DEFAULT_REGION = "cn-shanghai"


def _default_accounts() -> Mapping[str, str]:
    return DEFAULT_ACCOUNTS


def _probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability between 0 and 1, got {value}")


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """How the emulator behaves.

    * ``accounts``: AccessKeyId -> AccessKeySecret; every pair is an account of its
      own for QPS purposes (products and devices are shared).
    * ``latency_ms``: added to every authenticated, non-throttled request.
    * ``check_seconds`` / ``create_seconds``: duration of the CHECK and CREATE stages.
    * ``qps_scale``: multiplies every documented QPS limit.
    * ``fault_503``: probability of an HTTP 503 ServiceUnavailable gateway error.
    * ``fault_system_error``: probability of HTTP 200 ``iot.system.SystemException``.
    * ``fault_drop``: probability that the connection is dropped before the action runs.
    * ``fault_drop_after``: probability that the action runs and the connection is then
      dropped, so the client loses the response of a call that took effect.
    * ``fault_actions``: the operations the four faults above apply to (``None``: all),
      so a test can break one operation and keep the others working.
    * ``fail_check_names``: regular expression (``re.search``); matching names fail the check.
    * ``create_failure_rate``: fraction of names whose creation fails.
    * ``max_batch``: most names (or ``Count``) in one application.
    * ``state_path``: SQLite file that keeps products, devices and applications.
    * ``seed``: seeds the random source of faults, identifiers and failures.
    * ``nonce_ttl``: seconds a SignatureNonce is remembered.
    * ``max_clock_skew``: seconds a request timestamp may differ from the server clock.
    """

    accounts: Mapping[str, str] = field(default_factory=_default_accounts, repr=False)
    latency_ms: float = 0.0
    check_seconds: float = 1.0
    create_seconds: float = 2.0
    qps_scale: float = 1.0
    fault_503: float = 0.0
    fault_system_error: float = 0.0
    fault_drop: float = 0.0
    fault_drop_after: float = 0.0
    fault_actions: frozenset[str] | None = None
    fail_check_names: str | None = None
    create_failure_rate: float = 0.0
    max_batch: int = 10_000
    state_path: str | Path | None = None
    seed: int | None = None
    nonce_ttl: float = 1800.0
    max_clock_skew: float = 900.0
    region: str = DEFAULT_REGION

    def __post_init__(self) -> None:
        if not self.accounts:
            raise ValueError("at least one AccessKey pair is needed")
        for key_id, secret in self.accounts.items():
            if not key_id or not secret:
                raise ValueError("AccessKeyId and AccessKeySecret must not be empty")
        # A private, read-only copy: the caller's dict can change without effect.
        object.__setattr__(self, "accounts", MappingProxyType(dict(self.accounts)))
        for name in ("latency_ms", "check_seconds", "create_seconds", "nonce_ttl"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.qps_scale <= 0:
            raise ValueError(f"qps_scale must be positive, got {self.qps_scale}")
        if self.max_clock_skew <= 0:
            raise ValueError("max_clock_skew must be positive")
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {self.max_batch}")
        for name in (
            "fault_503",
            "fault_system_error",
            "fault_drop",
            "fault_drop_after",
            "create_failure_rate",
        ):
            _probability(name, getattr(self, name))
        if self.fail_check_names is not None:
            try:
                re.compile(self.fail_check_names)
            except re.error as exc:
                raise ValueError(
                    f"fail_check_names is not a valid regular expression: {exc}"
                ) from None

    @property
    def access_key_ids(self) -> tuple[str, ...]:
        """The configured AccessKeyIds (never the secrets)."""
        return tuple(self.accounts)

    def fail_check_pattern(self) -> re.Pattern[str] | None:
        return re.compile(self.fail_check_names) if self.fail_check_names is not None else None
