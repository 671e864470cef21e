"""`provisioner product create` / `show` as real processes against the emulator over a socket.

The official SDK (``alibabacloud-iot20180120``, its default V3 signature) reads back what
the CLI created. Every test that sees a ProductSecret checks that it is nowhere but in
the encrypted file: not in stdout, stderr, the logs or any other file of the directory.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pyrage
import pytest

from provisioner.api import retry
from provisioner.config import load_api_settings
from provisioner.emulator.app import create_app
from provisioner.emulator.config import EmulatorConfig
from provisioner.emulator.serve import running_emulator
from provisioner.errors import UsageError
from provisioner.products import ProductSpec, create_product

sdk_models = pytest.importorskip("alibabacloud_iot20180120.models")
sdk_client = pytest.importorskip("alibabacloud_iot20180120.client")
openapi_models = pytest.importorskip("alibabacloud_tea_openapi.models")

AK_ID, AK_SECRET = "product-key-id", "product-secret-value-0123456789"


@dataclass
class Rig:
    emulator: Any
    url: str
    tmp: Path
    identity: Any
    recipient: str

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": AK_ID,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": AK_SECRET,
            "PROVISIONER_ENDPOINT": self.url,
            "TMPDIR": str(self.tmp),
        }

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "provisioner", "product", *args],
            env=self.env(), cwd=self.tmp, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.emulator.stats()
        return stats

    def secret(self, product_key: str) -> str:
        value: str = self.emulator.world.products[product_key].product_secret
        return value

    def sdk(self) -> Any:
        config = openapi_models.Config(
            access_key_id=AK_ID,
            access_key_secret=AK_SECRET,
            endpoint=self.url.removeprefix("http://"),
            protocol="http",
            region_id="cn-shanghai",
        )
        return sdk_client.Client(config)

    def assert_secret_only_encrypted(
        self, secret: str, *outputs: subprocess.CompletedProcess[str]
    ) -> None:
        for result in outputs:
            assert secret not in result.stdout
            assert secret not in result.stderr
        for path in self.tmp.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), f"the secret is in {path.name}"


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    config = EmulatorConfig(accounts={AK_ID: AK_SECRET}, seed=21)
    app = create_app(config)
    identity = pyrage.x25519.Identity.generate()
    with running_emulator(config, app=app) as url:
        yield Rig(app.state.emulator, url, tmp_path, identity, str(identity.to_public()))


def _one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def test_refused_options_make_no_request(rig: Rig) -> None:
    bad_name = _one_line_error(rig.cli("create", "--name", "ab", "--node-type", "0"), 2)
    assert "--name: ProductName must be 4-30 characters" in bad_name
    tsl_only = rig.cli("create", "--name", "Lamp_01", "--node-type", "0", "--data-format", "1")
    assert "add --commodity-code iothub_senior" in _one_line_error(tsl_only, 2)
    unencrypted = rig.cli("create", "--name", "Lamp_01", "--node-type", "0", "--out", "s.age")
    assert "must be encrypted" in _one_line_error(unencrypted, 2)
    stray_recipient = rig.cli("create", "--name", "Lamp_01", "--node-type", "0", "-r", "age1x")
    assert "add --out FILE" in _one_line_error(stray_recipient, 2)
    assert rig.stats()["requests_total"] == 0
    assert rig.emulator.world.products == {}
    assert not (rig.tmp / "s.age").exists()


def test_create_with_options_is_read_back_by_the_official_sdk(rig: Rig) -> None:
    out = rig.tmp / "lamp.json.age"
    created = rig.cli(
        "create", "--name", "Lamp_01", "--node-type", "0",
        "--commodity-code", "iothub_senior", "--data-format", "1",
        "--protocol-type", "modbus", "--description", "Plant 3 street lamps",
        "--auth-type", "secret", "--category-key", "Lighting", "--no-publish-auto",
        "--validate-type", "2", "--resource-group-id", "rg-acfmxazb4ph6aiy",
        "--out", str(out), "--recipient", rig.recipient, "--log-format", "json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    pk = created.stdout.strip()
    assert created.stdout == f"{pk}\n"
    assert rig.stats()["requests"] == {"CreateProduct": 1}

    body = rig.sdk().query_product(sdk_models.QueryProductRequest(product_key=pk)).body
    assert body.success is True
    data = body.data
    assert (data.product_key, data.product_name, data.node_type) == (pk, "Lamp_01", 0)
    assert (data.aliyun_commodity_code, data.data_format) == ("iothub_senior", 1)
    assert (data.protocol_type, data.category_key, data.validate_type) == ("modbus", "Lighting", 2)
    assert (data.description, data.auth_type) == ("Plant 3 street lamps", "secret")
    stored = rig.emulator.world.products[pk]
    assert (stored.publish_auto, stored.resource_group_id) == (False, "rg-acfmxazb4ph6aiy")

    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert not list(rig.tmp.glob(".*.partial"))
    record = json.loads(pyrage.decrypt(out.read_bytes(), [rig.identity]))
    secret = rig.secret(pk)
    assert record == {"ProductKey": pk, "ProductName": "Lamp_01", "ProductSecret": secret}
    events = [json.loads(line) for line in created.stderr.splitlines() if line.startswith("{")]
    logged = next(e for e in events if e["event"] == "product.created")
    assert (logged["product_key"], logged["product_name"], logged["node_type"]) == (
        pk,
        "Lamp_01",
        0,
    )
    assert str(out) in created.stderr.splitlines()[-1]
    rig.assert_secret_only_encrypted(secret, created)


def test_create_without_out_never_shows_the_secret(rig: Rig) -> None:
    created = rig.cli(
        "create", "--name", "Gateway_01", "--node-type", "1", "--net-type", "ethernet"
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    pk = created.stdout.strip()
    assert f"provisioner product show {pk} --out FILE" in created.stderr
    body = rig.sdk().query_product(sdk_models.QueryProductRequest(product_key=pk)).body
    assert (body.data.node_type, body.data.net_type) == (1, 7)  # 7: Ethernet
    rig.assert_secret_only_encrypted(rig.secret(pk), created)

    duplicate = rig.cli("create", "--name", "Gateway_01", "--node-type", "1")
    message = _one_line_error(duplicate, 2)
    assert "a product named Gateway_01 already exists" in message
    assert "choose another --name" in message


def test_show_prints_fields_and_saves_the_secret_only_encrypted(rig: Rig) -> None:
    created = rig.cli(
        "create", "--name", "Sensor_01", "--node-type", "0", "--commodity-code", "iothub_senior",
        "--data-format", "0", "--description", "Humidity",
    )  # fmt: skip
    pk = created.stdout.strip()
    shown = rig.cli("show", pk)
    assert shown.returncode == 0, shown.stderr
    lines = [line.split("\t") for line in shown.stdout.splitlines()]
    assert lines[0] == ["field", "value"]
    fields = dict((k, v) for k, v in lines[1:])
    assert fields["ProductKey"] == pk
    assert fields["NodeType"] == "0 (device)"
    assert fields["DataFormat"] == "0 (custom)"
    assert fields["NetType"] == "WIFI"
    assert fields["Description"] == "Humidity"
    assert fields["DeviceCount"] == "0"

    as_json = rig.cli("show", pk, "--json")
    document = json.loads(as_json.stdout)
    assert document["ProductName"] == "Sensor_01"
    assert document["AliyunCommodityCode"] == "iothub_senior"
    assert "ProductSecret" not in document

    out = rig.tmp / "sensor.json.age"
    saved = rig.cli("show", pk, "--out", str(out), "-r", rig.recipient)
    assert saved.returncode == 0, saved.stderr
    record = json.loads(pyrage.decrypt(out.read_bytes(), [rig.identity]))
    assert record["ProductSecret"] == rig.secret(pk)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    unknown = rig.cli("show", "a1doesnotexist")
    assert "no product a1doesnotexist" in _one_line_error(unknown, 2)
    rig.assert_secret_only_encrypted(rig.secret(pk), created, shown, as_json, saved, unknown)


def test_output_problems_stop_before_create_product(rig: Rig) -> None:
    existing = rig.tmp / "taken.age"
    existing.write_bytes(b"keep me")
    taken = rig.cli(
        "create", "--name", "Lamp_02", "--node-type", "0", "--out", str(existing),
        "-r", rig.recipient,
    )  # fmt: skip
    assert "pass --force" in _one_line_error(taken, 1)
    assert existing.read_bytes() == b"keep me"
    nowhere = rig.cli(
        "create", "--name", "Lamp_02", "--node-type", "0", "--out",
        str(rig.tmp / "missing" / "s.age"), "-r", rig.recipient,
    )  # fmt: skip
    assert "does not exist" in _one_line_error(nowhere, 1)
    assert "CreateProduct" not in rig.stats()["requests"]
    assert rig.emulator.world.products == {}

    forced = rig.cli(
        "create", "--name", "Lamp_02", "--node-type", "0", "--out", str(existing),
        "-r", rig.recipient, "--force",
    )  # fmt: skip
    assert forced.returncode == 0, forced.stderr
    pk = forced.stdout.strip()
    record = json.loads(pyrage.decrypt(existing.read_bytes(), [rig.identity]))
    assert record["ProductSecret"] == rig.secret(pk)


def test_sdk_sends_every_documented_option_and_the_emulator_keeps_them(rig: Rig) -> None:
    client = rig.sdk()
    created = client.create_product(
        sdk_models.CreateProductRequest(
            product_name="LoRa_Meter",
            node_type=0,
            aliyun_commodity_code="iothub_senior",
            data_format=1,
            description="Water meters",
            net_type="LORA",
            join_permission_id="8abc",
            auth_type="secret",
            id_2=False,
            category_key="WaterMeter",
            publish_auto=True,
            validate_type=1,
            resource_group_id="rg-acfmxazb4ph6aiy",
        )
    ).body
    assert created.success is True, created.to_map()
    stored = rig.emulator.world.products[created.product_key]
    assert (stored.resource_group_id, stored.publish_auto) == ("rg-acfmxazb4ph6aiy", True)
    data = client.query_product(
        sdk_models.QueryProductRequest(product_key=created.product_key)
    ).body.data
    assert (data.net_type, data.category_key, data.validate_type) == (4, "WaterMeter", 1)
    refused = client.create_product(
        sdk_models.CreateProductRequest(product_name="No_Format", node_type=0,
                                        aliyun_commodity_code="iothub_senior")
    ).body  # fmt: skip
    assert (refused.success, refused.code) == (False, "iot.prod.ProductDataFormatIsNull")


def test_a_create_retried_after_a_lost_answer_says_it_may_exist(tmp_path: Path) -> None:
    # Seed 2 drops the first answer and delivers the second: the first attempt created
    # the product, the retry is told the name exists.
    config = EmulatorConfig(accounts={AK_ID: AK_SECRET}, seed=2, fault_drop_after=0.5)
    app = create_app(config)
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": AK_ID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": AK_SECRET}
    with running_emulator(config, app=app) as url, retry.testing():
        api = load_api_settings(endpoint=url, env=env)
        with pytest.raises(UsageError) as caught:
            anyio.run(lambda: create_product(ProductSpec("Lost_01", 0), api))
    message = str(caught.value)
    assert "already exists" in message
    assert "earlier attempt of this call may have created it" in message
    emulator = app.state.emulator
    assert [p.product_name for p in emulator.world.products.values()] == ["Lost_01"]
    assert emulator.stats()["requests"]["CreateProduct"] == 2
    assert emulator.faults["drop_after"] == 1
