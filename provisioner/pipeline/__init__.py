"""The runs: planning, the engine, the kinds of run, resume, status and re-export.

:func:`provision` runs (or resumes, or recognises as completed) the ``run`` a
:class:`RunSettings` describes; :func:`register_random` and :func:`import_devices` the
other kinds; :func:`resume` carries any run on by id; :func:`status` lists runs;
:func:`export_application` writes an existing application's credentials again;
:func:`dry_run_plan` plans without any call. See ``docs/architecture.md`` for the map.
"""

from __future__ import annotations

from provisioner.errors import ExportIncompleteError, LostApplicationsError, RunFailedError
from provisioner.pipeline.export import ExportOutcome, export_application
from provisioner.pipeline.finish import RunOutcome
from provisioner.pipeline.kinds.check_create import RUN_KIND, dry_run_plan, provision, run_key
from provisioner.pipeline.kinds.random_names import (
    MAX_PER_CALL,
    RANDOM_KIND,
    RandomSettings,
    register_random,
)
from provisioner.pipeline.kinds.single_import import IMPORT_KIND, ImportSettings, import_devices
from provisioner.pipeline.plan import Estimate, chunk_sizes, estimate, format_plan, split_chunks
from provisioner.pipeline.progress import (
    LogProgress,
    NullProgress,
    Progress,
    RichProgress,
    make_progress,
)
from provisioner.pipeline.report import Counts, rejects_path
from provisioner.pipeline.resume import resume
from provisioner.pipeline.settings import DEFAULT_CHUNK_SIZE, RunSettings, Tuning
from provisioner.pipeline.status import RunStatusView, status

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "IMPORT_KIND",
    "MAX_PER_CALL",
    "RANDOM_KIND",
    "RUN_KIND",
    "Counts",
    "Estimate",
    "ExportIncompleteError",
    "ExportOutcome",
    "ImportSettings",
    "LogProgress",
    "LostApplicationsError",
    "NullProgress",
    "Progress",
    "RandomSettings",
    "RichProgress",
    "RunFailedError",
    "RunOutcome",
    "RunSettings",
    "RunStatusView",
    "Tuning",
    "chunk_sizes",
    "dry_run_plan",
    "estimate",
    "export_application",
    "format_plan",
    "import_devices",
    "make_progress",
    "provision",
    "register_random",
    "rejects_path",
    "resume",
    "run_key",
    "split_chunks",
    "status",
]
