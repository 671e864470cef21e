"""``python -m provisioner``: the same entry point as the ``provisioner`` command."""

from provisioner.entry import main

main()
