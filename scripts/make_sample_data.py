"""Write the sample device lists in ``sample_data/``, deterministically (fixed seed).

* ``devices.csv``: 3,000 valid, unique DeviceNames in the styles factories use (serial
  numbers, gateway ports, MAC addresses, IMEIs, dotted asset tags), half of them with a
  valid Nickname, some with Chinese characters.
* ``devices_with_errors.csv``: 50 rows, mostly valid, with a few rows of every kind the
  validation rejects (empty, short, long or badly spelt DeviceNames, bad Nicknames,
  whitespace-only Nickname, duplicates), for the README and the tests.

Run from anywhere: ``python scripts/make_sample_data.py``. The output is byte-identical
on every run, so a diff after running it means the generator changed.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path

from provisioner.naming import device_name_problem, nickname_problem

__all__ = ["DEVICES", "SEED", "devices", "devices_with_errors", "main"]

SEED = 20241122
DEVICES = 3000
OUT = Path(__file__).resolve().parent.parent / "sample_data"

_UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O: they read as 1 and 0 on labels
_ALNUM = _UPPER + "0123456789"
_HEX = "0123456789ABCDEF"
_PLACES = ("line3", "line7", "hall_B", "dock2", "roof", "plant_sz", "lab1")
_KINDS = ("sensor", "meter", "gateway", "valve", "camera", "relay")
_CHINESE = ("温度传感器", "湿度计", "电表", "网关", "水阀", "烟雾报警器", "摄像头")


def _serial(rng: random.Random, i: int) -> str:
    return f"SN-{''.join(rng.choices(_ALNUM, k=4))}-{i:06d}"


def _gateway(rng: random.Random, i: int) -> str:
    return f"gw_{i:04d}:{rng.randrange(1, 17):02d}"


def _mac(rng: random.Random, _i: int) -> str:
    return ":".join("".join(rng.choices(_HEX, k=2)) for _ in range(6))


def _imei(rng: random.Random, _i: int) -> str:
    return "86" + "".join(rng.choices("0123456789", k=13))


def _asset(rng: random.Random, i: int) -> str:
    return f"meter.{rng.choice(('sh', 'bj', 'sz', 'hz'))}-{rng.randrange(1, 40):02d}.{i:06d}"


def _at(rng: random.Random, i: int) -> str:
    return f"dev@{rng.choice(_PLACES).replace('_', '-')}-{i:05d}"


_STYLES: tuple[Callable[[random.Random, int], str], ...] = (
    _serial,
    _serial,
    _gateway,
    _mac,
    _imei,
    _asset,
    _at,
)


def _nickname(rng: random.Random, i: int) -> str:
    if rng.random() < 0.2:
        return f"{rng.choice(_CHINESE)}_{i % 100:02d}"
    return f"{rng.choice(_PLACES)}_{rng.choice(_KINDS)}_{i:04d}"


def devices(n: int = DEVICES, seed: int = SEED) -> list[tuple[str, str]]:
    """``n`` unique, valid (DeviceName, Nickname) pairs; Nickname is "" for half of them."""
    rng = random.Random(seed)
    seen: set[str] = set()
    rows: list[tuple[str, str]] = []
    i = 0
    while len(rows) < n:
        i += 1
        name = rng.choice(_STYLES)(rng, i)
        if name in seen:
            continue
        seen.add(name)
        nick = _nickname(rng, i) if rng.random() < 0.5 else ""
        assert device_name_problem(name) is None, name
        assert nick == "" or nickname_problem(nick) is None, nick
        rows.append((name, nick))
    return rows


def devices_with_errors(seed: int = SEED + 1) -> list[tuple[str, str]]:
    """50 rows: valid ones with every kind of rejected row mixed in at fixed places."""
    good = devices(38, seed)
    bad: dict[int, tuple[str, str]] = {
        3: ("", "no_device_name"),  # empty DeviceName
        6: ("ab1", ""),  # too short
        9: ("SN-" + "0123456789" * 3, ""),  # 33 characters: too long
        12: ("sensor#0007", "hall_B_sensor_0007"),  # '#' not allowed
        15: ("dev 0042", ""),  # a space is not allowed
        18: ("温度计-0001", ""),  # Chinese is not allowed in a DeviceName
        21: ("SN-BAD1-000021", "line3-sensor-21"),  # '-' not allowed in a Nickname
        24: ("SN-BAD2-000024", "ab"),  # Nickname too short
        27: ("SN-BAD3-000027", "温度传感器" * 7),  # 35 Chinese = 70 counted: too long
        30: ("SN-BAD4-000030", "   "),  # whitespace only
        33: (good[0][0], "duplicate_of_row_2"),  # duplicate of the first data row
        36: (good[5][0], ""),  # duplicate
        40: (good[5][0], "again_dup"),  # and again
    }
    rows: list[tuple[str, str]] = []
    it = iter(good)
    for line in range(2, 52):  # CSV lines 2..51: 50 data rows
        rows.append(bad[line] if line in bad else next(it))
    return rows


def _csv_field(value: str) -> str:
    if any(c in value for c in ',"\n\r') or value != value.strip():
        return '"' + value.replace('"', '""') + '"'
    return value


def _write(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write("DeviceName,Nickname\n")
        for name, nick in rows:
            fh.write(f"{_csv_field(name)},{_csv_field(nick)}\n")


def main() -> int:
    OUT.mkdir(exist_ok=True)
    _write(OUT / "devices.csv", devices())
    _write(OUT / "devices_with_errors.csv", devices_with_errors())
    print(f"wrote {OUT / 'devices.csv'} and {OUT / 'devices_with_errors.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
