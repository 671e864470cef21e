"""The emulated service's per-account QPS limits, as the API notes document them.

Kept apart from the client's table (:data:`provisioner.api.limits.QPS_LIMITS`) on purpose:
the emulator plays the server, and if it read the client's figures a wrong one would be
agreed by both sides and never noticed. Both tables are checked against the documented
figures by ``tests/unit/test_qps_tables.py``.

Source: the QPS column of "2. Operations and per-account QPS limits" in the project's API
notes (``iot-api-notes.md``), for the operations the emulator serves.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["DEFAULT_QPS", "EMULATED_QPS", "qps_limit"]

#: Documented per-account QPS of every operation the emulator serves.
EMULATED_QPS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "BatchCheckDeviceNames": 10,
        "BatchRegisterDeviceWithApplyId": 500,
        "BatchRegisterDevice": 10,
        "QueryBatchRegisterDeviceStatus": 30,
        "QueryPageByApplyId": 50,
        "ImportDevice": 50,
        "CreateProduct": 50,
        "QueryProduct": 50,
        "RegisterDevice": 30,
        "QueryDeviceDetail": 50,
        "BatchQueryDeviceDetail": 5,
        "DeleteDevice": 50,
    }
)

#: Limit of an operation missing from the table (the most common documented figure). The
#: gateway refuses unknown actions before throttling, so only a test's action meets it.
DEFAULT_QPS: Final = 50


def qps_limit(action: str, scale: float = 1.0) -> int:
    """The limit of ``action``, multiplied by ``scale`` (never below 1)."""
    return max(1, int(EMULATED_QPS.get(action, DEFAULT_QPS) * scale))
