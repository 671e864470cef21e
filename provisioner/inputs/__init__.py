"""Input files: reading and validating the device lists of ``run``, ``validate`` and ``import``.

* :mod:`~provisioner.inputs.devices`: the run's list (DeviceName, Nickname) and its rules,
  :func:`read_devices`, :func:`validate_frame`;
* :mod:`~provisioner.inputs.imports`: the migration file of ``import`` (with DeviceSecrets,
  optionally age-encrypted) and ImportDevice's rules, :func:`read_import`;
* :mod:`~provisioner.inputs.rejects`: the rejects file, :func:`write_rejects`;
* :mod:`~provisioner.inputs.summary`: what ``validate`` finds, :func:`validate_file`;
* :mod:`~provisioner.inputs.digest`: :func:`fingerprint`, a run's input in its identity.

Shared by both readers:

* :mod:`~provisioner.inputs.files`: what a file really is, and one-line reading errors;
* :mod:`~provisioner.inputs.loading`: the text columns and the physical line of each record;
* :mod:`~provisioner.inputs.csv_lines`: records and physical lines of CSV bytes;
* :mod:`~provisioner.inputs.limits`: :class:`ReadLimits`, and how much of a cell is repeated;
* :mod:`~provisioner.inputs.columns`: the header names accepted for a column.

The names below are what the rest of the project uses; import them from here.
"""

from __future__ import annotations

from provisioner.inputs.columns import DEVICE_NAME_COLUMNS, NICKNAME_COLUMNS
from provisioner.inputs.devices import InputTable, read_devices, validate_frame
from provisioner.inputs.digest import fingerprint
from provisioner.inputs.files import CSV_SUFFIXES, PARQUET_SUFFIXES, FileKind, file_kind
from provisioner.inputs.imports import ENCRYPTED_SUFFIX, ImportTable, read_import
from provisioner.inputs.limits import ReadLimits, echo_cell
from provisioner.inputs.rejects import REJECTS_COLUMNS, write_rejects
from provisioner.inputs.summary import FIRST_REASONS, ValidationSummary, validate_file

__all__ = [
    "CSV_SUFFIXES",
    "DEVICE_NAME_COLUMNS",
    "ENCRYPTED_SUFFIX",
    "FIRST_REASONS",
    "NICKNAME_COLUMNS",
    "PARQUET_SUFFIXES",
    "REJECTS_COLUMNS",
    "FileKind",
    "ImportTable",
    "InputTable",
    "ReadLimits",
    "ValidationSummary",
    "echo_cell",
    "file_kind",
    "fingerprint",
    "read_devices",
    "read_import",
    "validate_file",
    "validate_frame",
    "write_rejects",
]
