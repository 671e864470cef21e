"""``python -m provisioner``: the same entry point as the ``provisioner`` command."""

from provisioner.cli import main

main()
