"""The emulator's world: state machine and business rules, with a fake clock."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from provisioner.emulator.config import EmulatorConfig
from provisioner.emulator.model import (
    CHECK,
    CHECK_FAILED,
    CHECK_SUCCESS,
    CREATE,
    CREATE_FAILED,
    CREATE_SUCCESS,
    BusinessError,
)
from provisioner.emulator.store import Store
from provisioner.emulator.world import World

T0 = 1_780_000_000.0
ALNUM = set(string.ascii_letters + string.digits)


def make_world(**overrides: object) -> World:
    settings: dict[str, object] = {"check_seconds": 1.0, "create_seconds": 2.0, "seed": 7}
    settings.update(overrides)
    return World(EmulatorConfig(**settings))  # type: ignore[arg-type]


def product_key(world: World, name: str = "Prod_1") -> str:
    return world.create_product(T0, name, 0).product_key


def check(world: World, pk: str, names: list[str], at: float = T0) -> int:
    return world.check_names(at, pk, names, [None] * len(names)).apply_id


def test_check_then_create_follows_the_clock() -> None:
    world = make_world()
    pk = product_key(world)
    apply_id = check(world, pk, ["dev-1", "dev-2", "dev-3"])

    assert world.application(T0 + 0.999, apply_id).status == CHECK
    assert world.application(T0 + 0.999, apply_id).valid_names() == []
    app = world.application(T0 + 1.0, apply_id)
    assert app.status == CHECK_SUCCESS
    assert app.valid_names() == ["dev-1", "dev-2", "dev-3"]
    assert app.invalid_names() == []

    world.start_create(T0 + 5, apply_id, pk)
    assert world.application(T0 + 6.9, apply_id).status == CREATE
    assert world.page(T0 + 6.9, apply_id, 50, 1) == ([], 0)  # nothing exists before the end
    app = world.application(T0 + 7.0, apply_id)
    assert app.status == CREATE_SUCCESS
    assert app.valid_names() == ["dev-1", "dev-2", "dev-3"]
    devices, total = world.page(T0 + 7, apply_id, 2, 1)
    assert total == 3
    assert [d.device_name for d in devices] == ["dev-1", "dev-2"]
    assert sorted(world.products[pk].devices) == ["dev-1", "dev-2", "dev-3"]


def test_apply_ids_increase() -> None:
    world = make_world()
    pk = product_key(world)
    first = check(world, pk, ["aaaa"])
    second = check(world, pk, ["bbbb"])
    third = world.register_random(T0, pk, 2).apply_id
    assert first < second < third


def test_existing_names_fail_the_check_and_are_listed() -> None:
    world = make_world()
    pk = product_key(world)
    world.import_device(T0, pk, "dev-2", "secret-2")
    apply_id = check(world, pk, ["dev-1", "dev-2", "dev-3"])
    app = world.application(T0 + 1, apply_id)
    assert app.status == CHECK_FAILED
    assert app.invalid_names() == ["dev-2"]
    assert app.valid_names() == []


def test_name_created_during_the_check_fails_it() -> None:
    world = make_world()
    pk = product_key(world)
    apply_id = check(world, pk, ["dev-1", "dev-2"])
    world.import_device(T0 + 0.5, pk, "dev-1", "secret-1")
    assert world.application(T0 + 1, apply_id).invalid_names() == ["dev-1"]


def test_fail_check_names_pattern() -> None:
    world = make_world(fail_check_names=r"^bad")
    pk = product_key(world)
    apply_id = check(world, pk, ["good-1", "bad-1", "bad-2"])
    app = world.application(T0 + 1, apply_id)
    assert app.status == CHECK_FAILED
    assert app.invalid_names() == ["bad-1", "bad-2"]


def test_malformed_names_fail_at_once_with_the_lists() -> None:
    world = make_world()
    pk = product_key(world)
    names = ["ok-name", "x", "bad name", "ok-name", "nick-ok"]
    nicks: list[str | None] = [None, None, None, None, "a b"]
    with pytest.raises(BusinessError) as exc:
        world.check_names(T0, pk, names, nicks)
    assert exc.value.code == "iot.device.InvalidFormattedDeviceNameInNameList"
    data = exc.value.data
    assert data is not None
    assert data["InvalidDeviceNameList"]["InvalidDeviceName"] == ["x", "bad name"]
    assert data["InvalidDeviceNicknameList"]["InvalidDeviceNickname"] == ["a b"]
    assert data["RepeatedDeviceNameList"]["RepeatedDeviceName"] == ["ok-name"]
    assert world.applications == {}


def test_bad_nickname_alone_has_its_own_code() -> None:
    world = make_world()
    pk = product_key(world)
    with pytest.raises(BusinessError) as exc:
        world.check_names(T0, pk, ["dev-1"], ["no spaces allowed"])
    assert exc.value.code == "iot.device.InvalidDeviceNickNameExisted"


def test_batch_size_limits() -> None:
    world = make_world(max_batch=3)
    pk = product_key(world)
    with pytest.raises(BusinessError) as exc:
        check(world, pk, ["aaaa", "bbbb", "cccc", "dddd"])
    assert exc.value.code == "iot.device.DeviceCountExceeded"
    with pytest.raises(BusinessError) as exc:
        check(world, pk, [])
    assert exc.value.code == "iot.device.NoneDeviceNameElement"
    with pytest.raises(BusinessError) as exc:
        world.register_random(T0, pk, 4)
    assert exc.value.code == "iot.device.DeviceCountExceeded"


def test_register_with_apply_id_needs_check_success() -> None:
    world = make_world(fail_check_names="^bad")
    pk = product_key(world)
    pending = check(world, pk, ["dev-1"])
    with pytest.raises(BusinessError) as exc:
        world.start_create(T0 + 0.5, pending, pk)
    assert exc.value.code == "iot.device.IncorrentDeviceApplyInfo"
    assert "CHECK" in exc.value.message

    failed = check(world, pk, ["bad-1"])
    with pytest.raises(BusinessError) as exc:
        world.start_create(T0 + 1, failed, pk)
    assert exc.value.code == "iot.device.IncorrentDeviceApplyInfo"
    assert "CHECK_FAILED" in exc.value.message

    world.start_create(T0 + 1, pending, pk)
    for at in (T0 + 1.5, T0 + 10):  # while running and after it finished
        with pytest.raises(BusinessError) as exc:
            world.start_create(at, pending, pk)
        assert exc.value.code == "iot.device.CreateDeviceTaskIsRunning"


def test_unknown_product_and_application() -> None:
    world = make_world()
    pk = product_key(world)
    with pytest.raises(BusinessError) as exc:
        check(world, "a1nothere00", ["dev-1"])
    assert exc.value.code == "iot.prod.NotExistedProduct"
    with pytest.raises(BusinessError) as exc:
        world.application(T0, 42)
    assert exc.value.code == "iot.device.DeviceApplyIsNotFound"
    apply_id = check(world, pk, ["dev-1"])
    other = product_key(world, "Prod_2")
    with pytest.raises(BusinessError) as exc:
        world.application(T0, apply_id, other)
    assert exc.value.code == "iot.device.DeviceApplyIsNotFound"


def test_names_taken_during_create_fail_and_the_rest_are_created() -> None:
    world = make_world()
    pk = product_key(world)
    apply_id = check(world, pk, ["dev-1", "dev-2", "dev-3"])
    world.start_create(T0 + 1, apply_id, pk)
    world.import_device(T0 + 2, pk, "dev-2", "secret")
    app = world.application(T0 + 3, apply_id)
    assert app.status == CREATE_FAILED
    assert app.invalid_names() == ["dev-2"]
    assert app.valid_names() == []
    devices, total = world.page(T0 + 3, apply_id, 50, 1)
    assert [d.device_name for d in devices] == ["dev-1", "dev-3"]
    assert total == 2


def test_two_applications_racing_for_one_name() -> None:
    world = make_world()
    pk = product_key(world)
    first = check(world, pk, ["shared", "only-a"])
    second = check(world, pk, ["shared", "only-b"], at=T0 + 0.1)
    world.start_create(T0 + 2, first, pk)
    world.start_create(T0 + 2.5, second, pk)
    assert world.application(T0 + 10, first).status == CREATE_SUCCESS
    loser = world.application(T0 + 10, second)
    assert loser.status == CREATE_FAILED
    assert loser.invalid_names() == ["shared"]


def test_create_failure_rate_fails_some_names() -> None:
    world = make_world(create_failure_rate=0.5)
    pk = product_key(world)
    names = [f"dev-{i:04d}" for i in range(200)]
    apply_id = check(world, pk, names)
    world.start_create(T0 + 1, apply_id, pk)
    app = world.application(T0 + 3, apply_id)
    assert app.status == CREATE_FAILED
    failed = set(app.invalid_names())
    assert 50 < len(failed) < 150
    created = {d.device_name for d in world.page(T0 + 3, apply_id, 50, 1)[0]}
    assert not created & failed
    assert world.page(T0 + 3, apply_id, 50, 1)[1] == 200 - len(failed)


def test_random_registration_goes_straight_to_create() -> None:
    world = make_world()
    pk = product_key(world)
    app = world.register_random(T0, pk, 25)
    assert app.status == CREATE
    assert world.application(T0 + 2, app.apply_id).status == CREATE_SUCCESS
    devices, total = world.page(T0 + 2, app.apply_id, 50, 1)
    assert total == 25
    for device in devices:
        assert len(device.device_name) == 20
        assert set(device.device_name) <= ALNUM


def test_secrets_are_random_32_alnum_and_ids_unique() -> None:
    world = make_world()
    pk = product_key(world)
    app = world.register_random(T0, pk, 300)
    devices, _ = world.page(T0 + 2, app.apply_id, 300, 1)
    secrets = {d.device_secret for d in devices}
    assert len(secrets) == 300
    assert all(len(s) == 32 and set(s) <= ALNUM for s in secrets)
    assert len({d.iot_id for d in devices}) == 300
    assert all(len(d.iot_id) >= 20 for d in devices)


def test_paging_is_stable_after_a_delete_and_past_the_end() -> None:
    world = make_world()
    pk = product_key(world)
    names = [f"dev-{i:03d}" for i in range(23)]
    apply_id = check(world, pk, names)
    world.start_create(T0 + 1, apply_id, pk)
    pages = [world.page(T0 + 3, apply_id, 10, n)[0] for n in (1, 2, 3, 4)]
    assert [d.device_name for page in pages for d in page] == names
    assert pages[3] == []
    victim = world.find_device(T0 + 3, product_key=pk, name="dev-005")
    world.delete_device(T0 + 3, victim)
    devices, total = world.page(T0 + 3, apply_id, 50, 1)
    assert total == 22
    assert [d.device_name for d in devices] == [n for n in names if n != "dev-005"]


def test_single_device_operations() -> None:
    world = make_world()
    pk = product_key(world)
    imported = world.import_device(T0, pk, "imp-1", "my-secret", nickname="Lamp_1", sn="SN1")
    assert imported.device_secret == "my-secret"
    with pytest.raises(BusinessError) as exc:
        world.import_device(T0, pk, "imp-1", "other")
    assert exc.value.code == "iot.device.AlreadyExistedDeviceName"
    with pytest.raises(BusinessError) as exc:
        world.import_device(T0, pk, "imp-2", "bad secret!")
    assert exc.value.code == "iot.common.InvalidFormattedParameter"
    with pytest.raises(BusinessError) as exc:
        world.import_device(T0, pk, "x", "secret")
    assert exc.value.code == "iot.device.InvalidFormattedDeviceName"

    registered = world.register_device(T0, pk, None)
    assert len(registered.device_secret) == 32
    assert world.find_device(T0, iot_id=registered.iot_id) is registered
    found = world.existing_devices(T0, pk, ["nope", registered.device_name, "imp-1"])
    assert found == [registered, imported]
    world.delete_device(T0, imported)
    with pytest.raises(BusinessError) as exc:
        world.find_device(T0, product_key=pk, name="imp-1")
    assert exc.value.code == "iot.device.NotExistedDevice"
    assert world.counts()["devices"] == 1


def test_product_rules() -> None:
    world = make_world()
    world.create_product(T0, "Prod_1", 1)
    cases = [
        (("Prod_1", 0), "iot.prod.AlreadyExistedProductName"),
        (("ab", 0), "iot.prod.InvalidFormattedProductName"),
        (("Prod_2", 3), "iot.prod.InvalidNodeType"),
    ]
    for (name, node_type), code in cases:
        with pytest.raises(BusinessError) as exc:
            world.create_product(T0, name, node_type)
        assert exc.value.code == code
    key = world.create_product(T0, "Prod_3", 0).product_key
    assert key.startswith("a1")
    assert len(key) == 11


def test_store_keeps_state_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    config = EmulatorConfig(check_seconds=1, create_seconds=2, state_path=path)
    store = Store(path)
    world = World(config, listener=store)
    pk = world.create_product(T0, "Prod_1", 0).product_key
    done = check(world, pk, ["dev-1", "dev-2"])
    world.start_create(T0 + 1, done, pk)
    world.advance(T0 + 3)
    pending = check(world, pk, ["dev-3"], at=T0 + 3)
    imported = world.import_device(T0 + 3, pk, "imp-1", "secret-1")
    store.close()
    assert path.stat().st_mode & 0o777 == 0o600

    store = Store(path)
    again = World(config, listener=store)
    store.load_into(again)
    assert again.products[pk].product_name == "Prod_1"
    devices, total = again.page(T0 + 3, done, 50, 1)
    assert [d.device_name for d in devices] == ["dev-1", "dev-2"]
    assert total == 2
    assert again.find_device(T0 + 3, iot_id=imported.iot_id).device_secret == "secret-1"
    # The application in CHECK finishes after the restart, on the clock.
    assert again.application(T0 + 3.5, pending).status == CHECK
    assert again.application(T0 + 4, pending).status == CHECK_SUCCESS
    later = check(again, pk, ["dev-4"], at=T0 + 4)
    assert later > pending
    with pytest.raises(BusinessError):
        again.create_product(T0, "Prod_1", 0)
    store.close()


def test_devices_built_ahead_are_invisible_until_the_application_is_created() -> None:
    world = World(EmulatorConfig(create_seconds=1.0, check_seconds=0.0))
    now = 1_000.0
    pk = world.create_product(now, "Prepared_prod", 0).product_key
    app = world.register_random(now, pk, 700)
    assert world.prepare(300) == 300  # a step never builds more than it is allowed
    assert world.prepare(300) == 300
    assert world.prepare(300) == 100
    assert world.prepare(300) == 0
    assert world.products[pk].devices == {}  # built, not created
    ahead = {name: d.device_secret for name, d in app.prepared.items()}
    world.advance(now + 1.0)
    assert app.status == "CREATE_SUCCESS"
    created = {d.device_name: d.device_secret for d in app.devices}
    assert created == ahead  # the creation filed the devices built ahead
    assert set(world.products[pk].devices) == set(created)
    assert app.prepared == {}
