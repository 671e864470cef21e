"""Our client against the emulator, in-process (ASGITransport) and over a real socket.

The same code path serves both: only the httpx transport differs. Covers every typed
operation, both signature versions, retries of 503 / SystemException / dropped
connections, throttling with x-acs-retry-after, and a client that never exceeds an
operation's QPS limit as the emulator counts it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import httpx
import pytest

from provisioner.api import IotClient
from provisioner.api import retry as retry_mod
from provisioner.api.limits import SlidingWindowLimiter
from provisioner.api.records import ApplyState
from provisioner.api.retry import RetryPolicy
from provisioner.config import ApiSettings, Credentials
from provisioner.emulator.app import create_app
from provisioner.emulator.config import EmulatorConfig
from provisioner.emulator.serve import running_emulator

pytestmark = pytest.mark.anyio

FAST = {"check_seconds": 0.02, "create_seconds": 0.02}


def _settings(endpoint: str, *, version: str = "v1", scale: float = 1.0) -> ApiSettings:
    return ApiSettings(
        credentials=Credentials("testid", "testsecret"),
        endpoint=endpoint,
        signature_version=version,  # type: ignore[arg-type]
        qps_scale=scale,
    )


@contextmanager
def _emulator(mode: str, config: EmulatorConfig) -> Iterator[tuple[Any, str, Any]]:
    """(emulator state, endpoint, transport or None) for ``mode`` in-process or socket."""
    app = create_app(config)
    if mode == "inprocess":
        yield app.state.emulator, "http://iot.emulator.test", httpx.ASGITransport(app=app)
    else:
        with running_emulator(config, app=app) as url:
            yield app.state.emulator, url, None


@asynccontextmanager
async def _client(
    endpoint: str, transport: Any, *, version: str = "v1", scale: float = 1.0, **kw: Any
) -> AsyncIterator[IotClient]:
    async with IotClient(
        _settings(endpoint, version=version, scale=scale), transport=transport, **kw
    ) as client:
        yield client


async def _wait_final(client: IotClient, pk: str, apply_id: int, want: set[str]) -> Any:
    for _ in range(500):
        status = await client.query_batch_register_device_status(pk, apply_id)
        if status.status in want:
            return status
        await anyio.sleep(0.01)
    raise AssertionError(f"application {apply_id} never reached {want}")


async def _export(client: IotClient, apply_id: int) -> list[Any]:
    first = await client.query_page_by_apply_id(apply_id, 1, page_size=50)
    devices = list(first.devices)
    for page in range(2, first.page_count + 1):
        devices.extend((await client.query_page_by_apply_id(apply_id, page, page_size=50)).devices)
    return devices


@pytest.mark.parametrize("mode", ["inprocess", "socket"])
@pytest.mark.parametrize("version", ["v1", "v3"])
async def test_every_operation_end_to_end(mode: str, version: str) -> None:
    with _emulator(mode, EmulatorConfig(**FAST, seed=1)) as (_emu, url, transport):
        async with _client(url, transport, version=version) as client:
            created = await client.create_product("flow_product", 0)
            pk = created.product_key
            assert (await client.query_product(pk)).product_name == "flow_product"

            names = [(f"dev-{i:04d}", f"nick_{i:04d}" if i % 2 else None) for i in range(120)]
            check = await client.batch_check_device_names(pk, names)
            status = await _wait_final(client, pk, check.apply_id, {"CHECK_SUCCESS"})
            assert sorted(status.valid_names) == sorted(n for n, _ in names)
            await client.batch_register_device_with_apply_id(pk, check.apply_id)
            await _wait_final(client, pk, check.apply_id, {"CREATE_SUCCESS"})
            devices = await _export(client, check.apply_id)
            assert sorted(d.device_name for d in devices) == sorted(n for n, _ in names)
            assert all(len(d.device_secret) == 32 for d in devices)
            assert len({d.iot_id for d in devices}) == len(devices)

            randoms = await client.batch_register_device(pk, 30)
            await _wait_final(client, pk, randoms.apply_id, {"CREATE_SUCCESS"})
            assert len(await _export(client, randoms.apply_id)) == 30

            imported = await client.import_device(pk, "imported-1", "Secret_1234", sn="SN_1")
            detail = await client.query_device_detail(product_key=pk, device_name="imported-1")
            assert detail.device_secret == "Secret_1234" == imported.device_secret

            registered = await client.register_device(pk, "single-1", nickname="single_one")
            assert registered.device_name == "single-1"
            batch = await client.batch_query_device_detail(pk, ["single-1", "dev-0001", "nope"])
            assert sorted(d.device_name for d in batch) == ["dev-0001", "single-1"]

            await client.delete_device(product_key=pk, device_name="single-1")
            again = await client.batch_query_device_detail(pk, ["single-1"])
            assert list(again) == []


async def test_existing_names_fail_the_check_and_are_listed() -> None:
    with _emulator("inprocess", EmulatorConfig(**FAST)) as (_emu, url, transport):
        async with _client(url, transport) as client:
            pk = (await client.create_product("dup_product", 0)).product_key
            await client.register_device(pk, "taken-01")
            check = await client.batch_check_device_names(
                pk, [("taken-01", None), ("free-01", None)]
            )
            status = await _wait_final(client, pk, check.apply_id, {"CHECK_FAILED"})
            assert status.status == ApplyState.CHECK_FAILED
            assert list(status.invalid_names) == ["taken-01"]


@pytest.mark.parametrize(
    "fault",
    [
        {"fault_503": 0.3},
        {"fault_system_error": 0.3},
        {"fault_drop": 0.2},
        {"fault_drop_after": 0.2},
    ],
    ids=["503", "system-exception", "drop-before", "drop-after"],
)
async def test_transient_faults_are_retried_with_fresh_signatures(fault: dict[str, float]) -> None:
    # Drops need a real socket: in-process there is no connection to drop.
    config = EmulatorConfig(**FAST, seed=7, **fault)  # type: ignore[arg-type]
    with _emulator("socket", config) as (emu, url, transport), retry_mod.testing():
        async with _client(url, transport, retry=RetryPolicy(max_attempts=12)) as client:
            pk = (await client.create_product("faulty_prod", 0)).product_key
            results = [await client.query_product(pk) for _ in range(40)]
            assert all(r.product_key == pk for r in results)
            assert client.retry_stats.retries > 0
            stats = emu.stats()
            assert sum(stats["faults"].values()) == client.retry_stats.retries
            # A retry that reused its nonce or signature would have been refused.
            assert "SignatureNonceUsed" not in stats["codes"]
            assert "SignatureDoesNotMatch" not in stats["codes"]


async def test_throttling_is_retried_after_the_servers_hint() -> None:
    # A limiter that allows far more than the emulator accepts forces Throttling.User.
    config = EmulatorConfig(**FAST)
    with _emulator("socket", config) as (emu, url, transport):
        loose = SlidingWindowLimiter("testid", scale=100)
        async with _client(url, transport, limiter=loose) as client:
            pk = (await client.create_product("throttle_prod", 0)).product_key
            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(client.batch_query_device_detail, pk, ["a-device"])
            assert emu.stats()["throttled"] > 0
            assert client.retry_stats.throttled == emu.stats()["throttled"]
            # Every call completed: the emulator answered each one successfully in the end.
            assert emu.stats()["requests"]["BatchQueryDeviceDetail"] >= 8


async def test_the_client_never_exceeds_an_operations_limit() -> None:
    scale = 0.2  # both sides: the emulator's limits and the client's limiter
    config = EmulatorConfig(**FAST, qps_scale=scale)
    with _emulator("socket", config) as (emu, url, transport):
        async with _client(url, transport, scale=scale) as client:
            pk = (await client.create_product("limit_prod", 0)).product_key
            check = await client.batch_check_device_names(pk, [("lim-0001", None)])
            await _wait_final(client, pk, check.apply_id, {"CHECK_SUCCESS"})
            limits = emu.stats()["limits"]
            calls = {
                "QueryBatchRegisterDeviceStatus": lambda: client.query_batch_register_device_status(
                    pk, check.apply_id
                ),
                "QueryProduct": lambda: client.query_product(pk),
                "BatchQueryDeviceDetail": lambda: client.batch_query_device_detail(pk, ["x-001"]),
            }
            async with anyio.create_task_group() as tg:
                for action, make in calls.items():
                    for _ in range(3 * limits[action] + 1):
                        tg.start_soon(make)
        stats = emu.stats()
        assert stats["throttled"] == 0
        for action in calls:
            # The paced client uses the budget (nearly) fully, and never beyond it.
            assert 0.9 * limits[action] <= stats["max_window"]["testid"][action] <= limits[action]
