"""The IoT Platform API: signing, request building, answers, retries and the client.

Everything but :mod:`provisioner.api.client` is pure (no I/O), so it can be tested
without a network and shared with the emulator.
"""

from __future__ import annotations

from provisioner.api import records
from provisioner.api.client import IotClient, new_nonce, now_utc
from provisioner.api.limits import QPS_LIMITS, Limiter, SlidingWindowLimiter, qps_for
from provisioner.api.protocol import (
    API_VERSION,
    ApiRequest,
    PreparedRequest,
    classify,
    read_response,
    signed_request,
    with_instance,
)
from provisioner.api.records import *  # noqa: F403 (every record: see __all__)
from provisioner.api.retry import RetryPolicy, RetryStats, set_testing
from provisioner.api.signing import (
    percent_encode,
    v1_signature,
    v1_string_to_sign,
    v3_signature,
    v3_string_to_sign,
)

__all__ = [
    "API_VERSION",
    "QPS_LIMITS",
    "ApiRequest",
    "IotClient",
    "Limiter",
    "PreparedRequest",
    "RetryPolicy",
    "RetryStats",
    "SlidingWindowLimiter",
    "classify",
    "new_nonce",
    "now_utc",
    "percent_encode",
    "qps_for",
    "read_response",
    "set_testing",
    "signed_request",
    "v1_signature",
    "v1_string_to_sign",
    "v3_signature",
    "v3_string_to_sign",
    "with_instance",
]
# The records, under the list their own module keeps.
__all__ += records.__all__
