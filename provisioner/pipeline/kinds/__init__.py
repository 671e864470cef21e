"""The kinds of run, one module each, and the registry resume looks them up in.

* :mod:`~provisioner.pipeline.kinds.check_create`: ``run`` (names checked, then created);
* :mod:`~provisioner.pipeline.kinds.random_names`: ``register-random``;
* :mod:`~provisioner.pipeline.kinds.single_import`: ``import`` (ImportDevice, one a call).

Their contract is :class:`~provisioner.pipeline.kinds.base.RunKind`; importing this
package registers each with :data:`~provisioner.pipeline.kinds.base.KINDS`.
"""

from __future__ import annotations

from provisioner.pipeline.kinds import check_create, random_names, single_import
from provisioner.pipeline.kinds.base import KINDS, ResumeOptions, RunKind, RunSpec, resume_kind

__all__ = [
    "KINDS",
    "ResumeOptions",
    "RunKind",
    "RunSpec",
    "check_create",
    "random_names",
    "resume_kind",
    "single_import",
]
