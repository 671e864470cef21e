"""create_product / show_product over httpx.MockTransport: how each answer reaches the operator.

The fake service answers by Action from a script, so the refusals the emulator never
gives a valid spec (a stricter real service, an unknown instance, a full instance) are
covered too. The ProductSecret must not leak into any message, log event or file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import anyio
import httpx
import pyrage
import pytest
from structlog.testing import capture_logs

from provisioner.api import retry
from provisioner.config import ApiSettings, Credentials
from provisioner.errors import OutputError, TerminalApiError, UsageError
from provisioner.output import load_encryption
from provisioner.products import ProductSpec, create_product, show_product

SECRET = "PrOdUcTsEcReT0042"
SETTINGS = ApiSettings(
    credentials=Credentials("testid", "testsecret"), endpoint="https://iot.example", max_attempts=2
)


@pytest.fixture(autouse=True)
def _no_retry_waits() -> Iterator[None]:
    with retry.testing():
        yield


def service(answers: dict[str, dict[str, Any]]) -> tuple[httpx.MockTransport, list[str]]:
    """A transport answering each Action with its scripted body; records the actions."""
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        params = dict(parse_qsl(request.url.query.decode()))
        seen.append(params["Action"])
        return httpx.Response(200, json={"RequestId": "RID", **answers[params["Action"]]})

    return httpx.MockTransport(handle), seen


def created(secret: str | None = SECRET) -> dict[str, Any]:
    data: dict[str, Any] = {"ProductKey": "a1New000001", "ProductName": "Lamp_01", "NodeType": 0}
    if secret is not None:
        data["ProductSecret"] = secret
    return {"Success": True, "ProductKey": "a1New000001", "Data": data}


def refusal(code: str, message: str = "refused") -> dict[str, Any]:
    return {"Success": False, "Code": code, "ErrorMessage": message}


def create(transport: httpx.MockTransport, **kwargs: Any) -> Any:
    return anyio.run(
        lambda: create_product(ProductSpec("Lamp_01", 0), SETTINGS, transport=transport, **kwargs)
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("iot.prod.AlreadyExistedProductName", "a product named Lamp_01 already exists"),
        ("iot.common.InvalidFormattedParameter", "IoT Platform refused the product options"),
        ("iot.prod.LongProductDesc", "IoT Platform refused the product options"),
        ("iot.prod.ProductCountExceedMax", "delete unused products first"),
        ("iot.system.InstanceNotFound", "check --iot-instance-id"),
    ],
)
def test_refusals_become_one_line_usage_errors(code: str, expected: str) -> None:
    transport, seen = service({"CreateProduct": refusal(code)})
    with pytest.raises(UsageError) as caught:
        create(transport)
    message = str(caught.value)
    assert expected in message
    assert "earlier attempt" not in message  # nothing was retried
    assert "\n" not in message
    assert seen == ["CreateProduct"]


def test_other_api_errors_pass_through_with_their_exit_code() -> None:
    transport, _ = service({"CreateProduct": refusal("iot.prod.CreateProductFailed")})
    with pytest.raises(TerminalApiError) as caught:
        create(transport)
    assert caught.value.exit_code == 1
    assert caught.value.__cause__ is None
    assert "iot.prod.CreateProductFailed" in str(caught.value)


def test_created_product_is_logged_without_its_secret(tmp_path: Path) -> None:
    transport, _ = service({"CreateProduct": created()})
    identity = pyrage.x25519.Identity.generate()
    out = tmp_path / "secret.age"
    encryption = load_encryption([str(identity.to_public())])
    with capture_logs() as logs:
        result = create(transport, out=out, encryption=encryption)
    assert SECRET not in repr(result)
    event = next(e for e in logs if e["event"] == "product.created")
    assert (event["product_key"], event["product_name"], event["node_type"]) == (
        "a1New000001",
        "Lamp_01",
        0,
    )
    assert SECRET not in repr(logs)
    record = json.loads(pyrage.decrypt(out.read_bytes(), [identity]))
    assert record["ProductSecret"] == SECRET


def test_missing_secret_leaves_no_file_and_names_the_product(tmp_path: Path) -> None:
    transport, _ = service({"CreateProduct": created(secret=None)})
    out = tmp_path / "secret.age"
    encryption = load_encryption([str(pyrage.x25519.Identity.generate().to_public())])
    with pytest.raises(OutputError) as caught:
        create(transport, out=out, encryption=encryption)
    message = str(caught.value)
    assert "product a1New000001 was created but its ProductSecret was not saved" in message
    assert "provisioner product show a1New000001 --out FILE" in message
    assert list(tmp_path.iterdir()) == []


def test_out_needs_encryption_before_any_call(tmp_path: Path) -> None:
    transport, seen = service({})
    with pytest.raises(UsageError, match="must be encrypted"):
        create(transport, out=tmp_path / "s.age")
    assert seen == []


def test_show_maps_an_unknown_product_and_refuses_a_malformed_key() -> None:
    transport, seen = service({"QueryProduct": refusal("iot.prod.NotExistedProduct")})
    with pytest.raises(UsageError, match="no product a1Missing000 in this account"):
        anyio.run(lambda: show_product("a1Missing000", SETTINGS, transport=transport))
    with pytest.raises(UsageError, match="PRODUCT_KEY must be"):
        anyio.run(lambda: show_product("a1 bad/key", SETTINGS, transport=transport))
    assert seen == ["QueryProduct"]
