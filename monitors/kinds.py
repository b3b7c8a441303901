"""Metric sources registered by the ``kind:`` string used in config files.

``SOURCE_KINDS`` maps a kind to a factory taking the source's option mapping. An
unknown kind is a ``ConfigError`` naming the known ones, never a silent default.
Other packages (the controller) may register more kinds with ``register_source``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from monitors.errors import ConfigError
from monitors.ingest import IngestSource
from monitors.prometheus import PrometheusSource
from monitors.source import MetricSource

__all__ = ["SOURCE_KINDS", "SourceFactory", "build_source", "register_source"]

SourceFactory = Callable[[Mapping[str, Any]], MetricSource]

SOURCE_KINDS: dict[str, SourceFactory] = {
    "prometheus": PrometheusSource.from_config,
    "ingest": IngestSource.from_config,
}


def register_source(kind: str, factory: SourceFactory) -> None:
    """Make ``kind`` available to ``build_source``; a kind cannot be registered twice."""
    if not kind or kind in SOURCE_KINDS:
        raise ConfigError(f"source kind {kind!r} is empty or already registered")
    SOURCE_KINDS[kind] = factory


def build_source(kind: str, options: Mapping[str, Any] | None = None) -> MetricSource:
    """Build the source of ``kind`` from its config ``options``."""
    try:
        factory = SOURCE_KINDS[kind]
    except KeyError:
        raise ConfigError(
            f"unknown source kind {kind!r}; known kinds: {', '.join(sorted(SOURCE_KINDS))}"
        ) from None
    return factory(options or {})
