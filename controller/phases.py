"""Moved to ``controller.core.phases`` (the pure core); this alias keeps imports written
against the old path working."""

from controller.core.phases import *  # noqa: F403 -- the alias re-exports the module's names
from controller.core.phases import __all__  # noqa: F401 -- and its list of them
