"""Metric sources registered by the ``kind:`` string used in config files.

``SOURCE_KINDS`` maps a kind to its options model (a ``SourceOptions``) and the
factory that builds a source from validated options. The model is the one check of
a kind's options: the controller's config validates ``sources.NAME.options`` with it
(and publishes its JSON Schema), ``build_source`` validates a plain mapping with it,
and the factory only ever sees the validated model. An unknown kind is a
``ConfigError`` naming the known ones, never a silent default. Other packages (the
controller) may register more kinds with ``register_source``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from monitors.errors import ConfigError
from monitors.ingest import IngestOptions, IngestSource
from monitors.prometheus import PrometheusOptions, PrometheusSource
from monitors.source import MetricSource, SourceOptions, validate_options

__all__ = ["SOURCE_KINDS", "SourceKind", "build_source", "register_source"]

OptionsT = TypeVar("OptionsT", bound=SourceOptions)


@dataclass(frozen=True, slots=True)
class SourceKind:
    """One registered ``kind:``: its options model and the factory that builds from it."""

    options: type[SourceOptions]
    factory: Callable[[Any], MetricSource]


SOURCE_KINDS: dict[str, SourceKind] = {
    "prometheus": SourceKind(PrometheusOptions, PrometheusSource.from_options),
    "ingest": SourceKind(IngestOptions, IngestSource.from_options),
}


def register_source(
    kind: str, factory: Callable[[OptionsT], MetricSource], *, options: type[OptionsT]
) -> None:
    """Make ``kind`` available to ``build_source``; a kind cannot be registered twice.

    Register before ``controller.config`` is imported: the config's schema is built
    from the kinds known then.
    """
    if not kind or kind in SOURCE_KINDS:
        raise ConfigError(f"source kind {kind!r} is empty or already registered")
    SOURCE_KINDS[kind] = SourceKind(options, factory)


def build_source(
    kind: str, options: Mapping[str, Any] | SourceOptions | None = None
) -> MetricSource:
    """Build the source of ``kind`` from its config ``options``: a mapping is validated
    with the kind's model first (a ``ConfigError`` naming the option)."""
    try:
        registered = SOURCE_KINDS[kind]
    except KeyError:
        raise ConfigError(
            f"unknown source kind {kind!r}; known kinds: {', '.join(sorted(SOURCE_KINDS))}"
        ) from None
    if isinstance(options, SourceOptions):
        if not isinstance(options, registered.options):
            raise TypeError(
                f"{kind} source: expected {registered.options.__name__}, "
                f"got {type(options).__name__}"
            )
        return registered.factory(options)
    validated = validate_options(registered.options, options or {}, what=f"{kind} source")
    return registered.factory(validated)
