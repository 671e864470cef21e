"""Optional SQLite persistence of the emulator's world (``--state PATH``).

Write-through: every change the world reports is committed at once, so a restart
with the same file finds the same products, devices and applications (and the
applications still in CHECK or CREATE finish on the wall clock as if the server had
never stopped). WAL journal; the file is created with mode 0600.

This is the emulated *server's* database and therefore holds DeviceSecrets and
ProductSecrets, as the real service's does. It is test data of a local emulator;
it is never the provisioner's own journal, which stores no secrets.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from provisioner.emulator.model import Application, Device, Product
from provisioner.emulator.world import World

__all__ = ["Store"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    product_key TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    iot_id TEXT PRIMARY KEY,
    product_key TEXT NOT NULL,
    device_name TEXT NOT NULL,
    device_secret TEXT NOT NULL,
    nickname TEXT,
    sn TEXT,
    created_at REAL NOT NULL,
    apply_id INTEGER,
    UNIQUE (product_key, device_name)
);
CREATE TABLE IF NOT EXISTS applications (
    apply_id INTEGER PRIMARY KEY,
    data TEXT NOT NULL
);
"""

_PRODUCT_FIELDS = (
    "product_key",
    "product_name",
    "node_type",
    "product_secret",
    "created_at",
    "aliyun_commodity_code",
    "data_format",
    "description",
    "protocol_type",
    "net_type",
    "auth_type",
    "category_key",
    "publish_auto",
    "validate_type",
    "resource_group_id",
)
#: The columns of ``devices``, each a :class:`Device` field of the same name.
_DEVICE_COLUMNS = (
    "iot_id",
    "product_key",
    "device_name",
    "device_secret",
    "nickname",
    "sn",
    "created_at",
    "apply_id",
)
# Built from the constant column names above, never from a value.
_INSERT_DEVICES = (
    f"INSERT INTO devices ({', '.join(_DEVICE_COLUMNS)})"  # noqa: S608
    f" VALUES ({', '.join('?' * len(_DEVICE_COLUMNS))})"
)
_SELECT_DEVICES = f"SELECT {', '.join(_DEVICE_COLUMNS)} FROM devices ORDER BY rowid"  # noqa: S608
_APPLICATION_FIELDS = (
    "apply_id",
    "product_key",
    "kind",
    "names",
    "nicknames",
    "submitted_at",
    "status",
    "due_at",
    "failures",
)


class Store:
    """A :class:`~provisioner.emulator.world.WorldListener` writing to one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Create the file private before SQLite opens it (its WAL and SHM files
        # inherit the permissions of the database file).
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(self.path, 0o600)
        # One event loop thread uses the connection, but not the thread that opened it.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # --- WorldListener --------------------------------------------------------------------

    def product_saved(self, product: Product) -> None:
        data = {name: getattr(product, name) for name in _PRODUCT_FIELDS}
        self._db.execute(
            "INSERT OR REPLACE INTO products (product_key, data) VALUES (?, ?)",
            (product.product_key, json.dumps(data)),
        )

    def devices_created(
        self, devices: Sequence[Device], application: Application | None = None
    ) -> None:
        rows = [tuple(getattr(d, name) for name in _DEVICE_COLUMNS) for d in devices]
        with self._transaction():
            self._db.executemany(_INSERT_DEVICES, rows)
            if application is not None:
                self.application_saved(application)

    def device_deleted(self, device: Device) -> None:
        self._db.execute("DELETE FROM devices WHERE iot_id = ?", (device.iot_id,))

    def application_saved(self, application: Application) -> None:
        data = {name: getattr(application, name) for name in _APPLICATION_FIELDS}
        self._db.execute(
            "INSERT OR REPLACE INTO applications (apply_id, data) VALUES (?, ?)",
            (application.apply_id, json.dumps(data)),
        )

    # --- loading ----------------------------------------------------------------------------

    def load_into(self, world: World) -> None:
        """Fill an empty world with what the file holds."""
        products = [
            Product(**json.loads(data))
            for (data,) in self._db.execute("SELECT data FROM products ORDER BY rowid")
        ]
        applications = [
            _application(json.loads(data))
            for (data,) in self._db.execute("SELECT data FROM applications ORDER BY apply_id")
        ]
        devices = [
            Device(**dict(zip(_DEVICE_COLUMNS, row, strict=True)))
            for row in self._db.execute(_SELECT_DEVICES)
        ]
        world.load(products, devices, applications)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


def _application(data: dict[str, Any]) -> Application:
    return Application(
        apply_id=int(data["apply_id"]),
        product_key=str(data["product_key"]),
        kind=data["kind"],
        names=list(data["names"]),
        nicknames=dict(data["nicknames"]),
        submitted_at=float(data["submitted_at"]),
        status=str(data["status"]),
        due_at=None if data["due_at"] is None else float(data["due_at"]),
        failures=dict(data["failures"]),
    )


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
