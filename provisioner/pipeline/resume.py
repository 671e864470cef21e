"""``provisioner resume RUN_ID``: a run of any kind, with the options it was started with.

The journal keeps what each kind needs to start again (paths, counts, the ProductKey,
public keys and the *name* of a passphrase variable), never a secret: credentials
always come from the environment, and an encrypted input's identity file is read
again. A ``run`` resumes from the journal alone: its input file is not read again, so an
input edited or moved since (a line added after a kill) does not stand in the way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from provisioner.config import ApiSettings, load_api_settings
from provisioner.journal import Journal, RunRecord, resolve_journal_path
from provisioner.output import Encryption, load_encryption
from provisioner.pipeline.finish import RunOutcome
from provisioner.pipeline.importer import IMPORT_KIND, ImportSettings, import_devices
from provisioner.pipeline.progress import Progress
from provisioner.pipeline.random_names import (
    RANDOM_KIND,
    LostPolicy,
    RandomSettings,
    register_random,
)
from provisioner.pipeline.run import resume_check_create
from provisioner.pipeline.settings import RunSettings

__all__ = ["resume"]


async def resume(
    run_id: str,
    *,
    journal: str | None = None,
    encryption: Encryption | None = None,
    api: ApiSettings | None = None,
    force: bool = False,
    lost: LostPolicy | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Progress | None = None,
    base: RunSettings | None = None,
    env: Mapping[str, str] = os.environ,
) -> RunOutcome:
    """Resume run ``run_id`` with the options it was started with.

    ``encryption`` and ``api`` override what the journal recorded. ``base`` supplies
    the other settings of a ``run`` (tuning, progress) when given; ``lost`` is the
    ``--lost`` policy of a ``register-random`` run.
    """
    with Journal(resolve_journal_path(journal, env)) as store:
        run = store.get_run(run_id)
    params = run.params
    if api is None:
        api = load_api_settings(
            endpoint=params.get("endpoint"),
            region=params.get("region"),
            iot_instance_id=params.get("iot_instance_id"),
            env=env,
        )
    if encryption is None:
        encryption = _recorded_encryption(run, env)
    common: dict[str, Any] = {
        "product_key": run.product_key,
        "out": Path(params["out"]),
        "encryption": encryption,
        "fmt": params.get("format", "csv"),
        "force": force,
        "journal": journal,
        "api": api,
        "encryption_options": params.get("encryption") or {},
    }
    if run.kind == IMPORT_KIND:
        identity = params.get("identity")
        import_settings = ImportSettings(
            input=Path(params["input"]),
            identity=Path(identity) if identity else None,
            existing=params.get("existing", "fail"),
            skip_invalid=bool(params.get("skip_invalid", False)),
            **common,
        )
        if base is not None:
            import_settings = replace(import_settings, tuning=base.tuning, progress=base.progress)
        return await import_devices(
            import_settings, transport=transport, progress=progress, expected_run_id=run.run_id
        )
    if run.kind == RANDOM_KIND:
        settings = RandomSettings(
            count=int(params["count"]),
            per_call=int(params["per_call"]),
            lost=lost or "fail",
            **common,
        )
        if base is not None:
            settings = replace(settings, tuning=base.tuning, progress=base.progress)
        return await register_random(
            settings, transport=transport, progress=progress, expected_run_id=run.run_id
        )
    fields: dict[str, Any] = {
        **common,
        "input": Path(params["input"]),
        "chunk_size": int(params.get("chunk_size", 10_000)),
        "skip_invalid": bool(params.get("skip_invalid", False)),
        "existing": params.get("existing", "fail"),
    }
    run_settings = replace(base, **fields) if base is not None else RunSettings(**fields)
    return await resume_check_create(run, run_settings, transport=transport, progress=progress)


def _recorded_encryption(run: RunRecord, env: Mapping[str, str]) -> Encryption:
    options = dict(run.params.get("encryption") or {})
    recipients_file = options.get("recipients_file")
    return load_encryption(
        recipients=list(options.get("recipients") or ()),
        recipients_file=Path(recipients_file) if recipients_file else None,
        passphrase_env=options.get("passphrase_env"),
        env=env,
    )
