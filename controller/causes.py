"""Moved to ``controller.core.causes`` (the pure core); this alias keeps imports written
against the old path working."""

from controller.core.causes import *  # noqa: F403 -- the alias re-exports the module's names
from controller.core.causes import __all__  # noqa: F401 -- and its list of them
