"""A local emulator of the IoT Platform device provisioning API.

* :mod:`~provisioner.emulator.config`: :class:`EmulatorConfig`, every knob.
* :mod:`~provisioner.emulator.app`: ``create_app(config, clock=...)``, the Starlette app.
* :mod:`~provisioner.emulator.serve`: ``serve()`` and ``running_emulator()`` (uvicorn).
* :mod:`~provisioner.emulator.cli`: ``emulator_command``, the ``provisioner emulator`` command.
* :mod:`~provisioner.emulator.world` / :mod:`~provisioner.emulator.model`: products,
  devices and applications with the API's rules; :mod:`~provisioner.emulator.actions`
  maps the twelve operations onto them.
* :mod:`~provisioner.emulator.auth`, :mod:`~provisioner.emulator.throttle`,
  :mod:`~provisioner.emulator.render`, :mod:`~provisioner.emulator.store`: the gateway's
  signature checks, QPS limits, response formats and the optional SQLite state.

Nothing is imported here, so importing the package (for example by the CLI) stays cheap.
"""

from __future__ import annotations

__all__: list[str] = []
