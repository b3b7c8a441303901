"""``python -m registry`` runs the ``modelreg`` command."""

from registry.cli import main

main()
