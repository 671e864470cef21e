"""Create and inspect IoT Platform products: the library behind ``provisioner product``.

:mod:`~provisioner.products.spec` checks CreateProduct's options in pure code;
:mod:`~provisioner.products.service` makes the calls and keeps the ProductSecret out of
everything but an encrypted file. Everything either module exports is exported here.
"""

from __future__ import annotations

from provisioner.products import service, spec
from provisioner.products.service import *  # noqa: F403 (see __all__)
from provisioner.products.spec import *  # noqa: F403 (see __all__)

# The names of both modules, under the lists the modules keep.
__all__: list[str] = []
__all__ += service.__all__
__all__ += spec.__all__
