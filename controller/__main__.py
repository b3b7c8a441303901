"""``python -m controller`` runs the full ``modelreg`` command (registry + controller)."""

from controller.cli import main

main()
