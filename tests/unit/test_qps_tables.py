"""The client's and the emulator's QPS tables both say what the API notes document.

The emulator keeps its own table (provisioner.emulator.qps) so that a wrong figure in the
client's (provisioner.api.limits) is caught here instead of being agreed by both sides.
The notes live outside the repository, so their figures are copied below as literals.
"""

from __future__ import annotations

import pytest

from provisioner.api.limits import QPS_LIMITS, qps_for
from provisioner.emulator.actions import ACTIONS
from provisioner.emulator.qps import EMULATED_QPS, qps_limit
from provisioner.emulator.throttle import Throttle

# The QPS column of the operations tables of the API notes (shared docs,
# iot-api-notes.md): "2. Operations and per-account QPS limits" ...
DOCUMENTED_QPS: dict[str, int] = {
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
    # ... and "7. Operations added this round" (which repeats QueryDeviceDetail 50,
    # BatchQueryDeviceDetail 5 and DeleteDevice 50 with the same figures). Neither side
    # calls these yet; they are here so that whichever adds one is checked at once.
    "BatchCheckImportDevice": 100,
    "BatchImportDevice": 10,
    "QueryImportedDeviceByApplyId": 50,
    "SaveDeviceProp": 50,
    "QueryDeviceProp": 50,
    "CreateDeviceGroup": 500,
    "QueryDeviceGroupInfo": 30,
    "BatchAddDeviceGroupRelations": 500,
    "QueryDeviceListByDeviceGroup": 5,
}

KNOWN = sorted(set(QPS_LIMITS) | set(EMULATED_QPS))


@pytest.mark.parametrize("operation", KNOWN)
def test_both_tables_hold_the_documented_figure(operation: str) -> None:
    assert operation in DOCUMENTED_QPS, f"{operation}: no documented QPS"
    documented = DOCUMENTED_QPS[operation]
    assert QPS_LIMITS.get(operation) == documented, "client"
    assert EMULATED_QPS.get(operation) == documented, "emulator"


def test_both_tables_know_the_same_operations() -> None:
    assert set(QPS_LIMITS) == set(EMULATED_QPS)
    assert dict(QPS_LIMITS) == dict(EMULATED_QPS)


def test_the_emulator_has_a_figure_for_every_operation_it_serves() -> None:
    assert set(ACTIONS) <= set(EMULATED_QPS)


@pytest.mark.parametrize("scale", [0.01, 0.1, 0.5, 1.0, 3.0, 100.0])
def test_scaled_limits_agree(scale: float) -> None:
    for operation in KNOWN:
        assert qps_limit(operation, scale) == qps_for(operation, scale), operation
        assert Throttle(scale).limit(operation) == qps_limit(operation, scale), operation


def test_the_emulator_throttles_by_its_own_table(monkeypatch: pytest.MonkeyPatch) -> None:
    # A wrong figure in the client's table must not move the emulated server's limit.
    monkeypatch.setitem(QPS_LIMITS, "BatchQueryDeviceDetail", 500)
    assert qps_for("BatchQueryDeviceDetail") == 500
    assert Throttle().limit("BatchQueryDeviceDetail") == DOCUMENTED_QPS["BatchQueryDeviceDetail"]
