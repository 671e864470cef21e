"""The run report beside the output file (``PATH.report.json``), written atomically.

The report holds counts, timings and failures, never credentials; it is still written
with mode 0600 by default because it names devices and products.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from provisioner.errors import OutputError
from provisioner.output._atomic import PRIVATE_MODE, write_bytes_atomic

__all__ = ["report_path", "write_json_atomic"]


def report_path(output: Path) -> Path:
    """Where the report of the output file ``output`` goes: ``<output>.report.json``."""
    return output.with_name(f"{output.name}.report.json")


def write_json_atomic(path: Path, data: Mapping[str, Any], *, mode: int = PRIVATE_MODE) -> None:
    """Write ``data`` as indented UTF-8 JSON to ``path``, replacing it atomically.

    Temporary file in the same directory, fsync, rename, directory fsync: readers see the
    old report or the new one, never a half-written file. Raises :class:`OutputError`.
    """
    try:
        text = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False, default=str)
    except (TypeError, ValueError) as exc:
        raise OutputError(f"cannot encode the report {path} as JSON: {exc}") from exc
    # A report is rewritten on every run of the same job: replacing it is the point.
    write_bytes_atomic(path, (text + "\n").encode("utf-8"), force=True, mode=mode)
