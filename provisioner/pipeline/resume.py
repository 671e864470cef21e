"""``provisioner resume RUN_ID``: a run of any kind, with the options it was started with.

The journal keeps what each kind needs to start again (paths, counts, the ProductKey,
public keys and the *name* of a passphrase variable), never a secret: credentials
always come from the environment, and an encrypted input's identity file is read
again. How to resume a kind is the kind's own business (the registry of
:mod:`provisioner.pipeline.kinds`); this module only finds the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import httpx

from provisioner import wiring
from provisioner.config import ApiSettings
from provisioner.output import Encryption
from provisioner.pipeline.finish import RunOutcome
from provisioner.pipeline.kinds import ResumeOptions, resume_kind
from provisioner.pipeline.progress import Progress

__all__ = ["resume"]


async def resume(
    run_id: str,
    options: ResumeOptions | None = None,
    *,
    journal: str | None = None,
    encryption: Encryption | None = None,
    api: ApiSettings | None = None,
    force: bool = False,
    lost: str | None = None,
    api_options: Mapping[str, Any] | None = None,
    base: Any = None,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Progress | None = None,
) -> RunOutcome:
    """Resume run ``run_id`` (a unique prefix will do) with the options it was started
    with. ``options`` (or the keywords, one by one) override what the journal recorded:
    ``api`` replaces the API settings, ``api_options`` changes some of the recorded ones
    (``timeout``, ``deadline``, ``qps_scale``, ``insecure_http``); ``base``: settings
    whose ``tuning`` and ``progress`` apply (tests, libraries)."""
    if options is None:
        options = ResumeOptions(
            journal=journal,
            encryption=encryption,
            api=api,
            force=force,
            lost=lost,
            api_options=dict(api_options or {}),
            tuning=getattr(base, "tuning", None),
            progress=getattr(base, "progress", None),
        )
    store = wiring.open_journal(options.journal)
    try:
        run = store.get_run(run_id)
    finally:
        store.close()
    options = replace(options, transport=transport, reporter=progress)
    return await resume_kind(run.kind)(run, options)
