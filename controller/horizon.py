"""Moved to ``controller.core.horizon`` (the pure core); this alias keeps imports written
against the old path working."""

from controller.core.horizon import *  # noqa: F403 -- the alias re-exports the module's names
from controller.core.horizon import __all__  # noqa: F401 -- and its list of them
