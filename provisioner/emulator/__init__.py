"""A local emulator of the IoT Platform device provisioning API.

* :mod:`~provisioner.emulator.config`: :class:`EmulatorConfig`, every knob.
* :mod:`~provisioner.emulator.app`: ``create_app(config, clock=...)``, the Starlette app.
* :mod:`~provisioner.emulator.serve`: ``serve()`` and ``running_emulator()`` (uvicorn).
* :mod:`~provisioner.emulator.cli`: what ``provisioner emulator`` runs (its options are in
  :mod:`provisioner.commands.emulator`, so that the CLI need not import the server).
* :mod:`~provisioner.emulator.world` (applications and their clock) on
  :mod:`~provisioner.emulator.catalog` (products and devices), with the records of
  :mod:`~provisioner.emulator.model`: the API's rules; :mod:`~provisioner.emulator.actions`
  maps the twelve operations onto them.
* :mod:`~provisioner.emulator.auth`, :mod:`~provisioner.emulator.throttle`,
  :mod:`~provisioner.emulator.render`, :mod:`~provisioner.emulator.store`: the gateway's
  signature checks, QPS limits, response formats and the optional SQLite state. The
  limits are the emulator's own documented table (:mod:`~provisioner.emulator.qps`), not
  the client's.

Nothing is imported here, so importing the package (for example by the CLI) stays cheap.
"""

from __future__ import annotations

__all__: list[str] = []
