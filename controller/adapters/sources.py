"""The config's metric sources, each built one way: ``monitors.build_source`` by kind.

An ingest source is a ``MetricSource`` like any other; the daemon's ingest API writes
to its store (``ingest_stores``), and the shell's measuring path reads each window of
it once (``controller.shell.measure``).
"""

from __future__ import annotations

from collections.abc import Mapping

from controller.config import Config
from monitors import IngestSource, IngestStore, MetricSource, build_source

__all__ = ["build_sources", "ingest_stores"]


def build_sources(config: Config) -> dict[str, MetricSource]:
    """One source per ``sources:`` entry, by name."""
    return {name: build_source(s.kind, s.options) for name, s in config.sources.items()}


def ingest_stores(sources: Mapping[str, MetricSource]) -> dict[str, IngestStore]:
    """The stores behind the ingest sources, by source name."""
    return {name: s.store for name, s in sources.items() if isinstance(s, IngestSource)}
