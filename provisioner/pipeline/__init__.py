"""Planning and orchestration of a provisioning run, and the re-export of an application.

:func:`provision` runs (or resumes, or recognises as completed) the job a
:class:`RunSettings` describes; :func:`resume` does it by run id; :func:`status`
lists runs; :func:`export_application` writes an existing application's credentials
again; :func:`dry_run_plan` plans without any call.
"""

from __future__ import annotations

from provisioner.pipeline.export import ExportIncompleteError, ExportOutcome, export_application
from provisioner.pipeline.importer import IMPORT_KIND, ImportSettings, import_devices
from provisioner.pipeline.plan import Estimate, chunk_sizes, estimate, format_plan, split_chunks
from provisioner.pipeline.progress import (
    LogProgress,
    NullProgress,
    Progress,
    RichProgress,
    make_progress,
)
from provisioner.pipeline.random_names import (
    RANDOM_KIND,
    LostApplicationsError,
    RandomSettings,
    register_random,
)
from provisioner.pipeline.report import Counts, rejects_path
from provisioner.pipeline.resume import resume
from provisioner.pipeline.run import (
    RUN_KIND,
    RunOutcome,
    RunStatusView,
    dry_run_plan,
    provision,
    run_key,
    status,
)
from provisioner.pipeline.session import RunFailedError
from provisioner.pipeline.settings import DEFAULT_CHUNK_SIZE, RunSettings, Tuning

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "IMPORT_KIND",
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
