"""Moved to the ``serving`` package (``serving.route_table``), which serving processes can
import without the daemon. This alias keeps ``from controller.serving import RouteTable``
working for one release, with a ``DeprecationWarning``."""

from __future__ import annotations

import warnings

from serving.route_table import OutcomeReporter, RouteTable

__all__ = ["OutcomeReporter", "RouteTable"]

warnings.warn(
    "controller.serving moved to serving.route_table; import RouteTable from there",
    DeprecationWarning,
    stacklevel=2,
)
