"""provisioner: bulk device provisioning for Alibaba Cloud IoT Platform.

The library API (see the README's "From Python"): :func:`provision` runs a file of
devices exactly as ``provisioner run`` does and returns a :class:`RunResult`. Both are
imported on first use, so ``import provisioner`` stays cheap for the command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provisioner.library import RunResult, provision, provision_async

__all__ = ["RunResult", "__version__", "provision", "provision_async"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("RunResult", "provision", "provision_async"):
        from provisioner import library

        return getattr(library, name)
    raise AttributeError(f"module 'provisioner' has no attribute {name!r}")
