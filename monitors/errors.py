"""Errors raised by ``monitors``.

Only configuration and input problems raise. A source that cannot observe (timeout,
HTTP error, malformed payload, NaN) returns a ``Measurement`` with status ``error``
or ``nodata`` instead: failures of the outside world are data, not exceptions.

Exception tree::

    MonitorsError
    ├── ConfigError (ValueError)            bad source/metric/trigger/rule configuration
    │   ├── TemplateError                   PromQL template with an unknown placeholder
    │   └── OptionError                     a valid source option this process cannot use
    ├── IngestError (ValueError)            an ingest batch was refused; nothing was stored
    │   ├── IngestValidationError           a missing field, a wrong type, a duplicate id
    │   │   └── IngestConflict              a prediction id already stored (or labelled)
    │   └── UnknownPredictionError (LookupError)
    │                                       labels for prediction ids never ingested
    └── AlertPayloadError (ValueError)      an Alertmanager webhook body that cannot be used
        └── PayloadTooLarge                 the body exceeds the configured size limit
"""

from __future__ import annotations

__all__ = [
    "AlertPayloadError",
    "ConfigError",
    "IngestConflict",
    "IngestError",
    "IngestValidationError",
    "MonitorsError",
    "OptionError",
    "PayloadTooLarge",
    "TemplateError",
    "UnknownPredictionError",
]


class MonitorsError(Exception):
    """Base of every error ``monitors`` raises on purpose."""


class ConfigError(MonitorsError, ValueError):
    """A configuration value is invalid; the message names the key and the reason."""


class OptionError(ConfigError):
    """A source option valid in the file that this process cannot use: a file that
    cannot be read, say. Only the running process can tell; ``key`` is the option's
    name, and the message reads ``key: problem``."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class TemplateError(ConfigError):
    """A PromQL template uses a placeholder that is not known or is malformed."""


class IngestError(MonitorsError, ValueError):
    """An ingest batch was refused as a whole; no row of it was written."""


class IngestValidationError(IngestError):
    """A record of the batch lacks a field, has a wrong type, or repeats an id."""


class IngestConflict(IngestValidationError):
    """The batch repeats a prediction id already stored (or labels one already
    labelled): it conflicts with what is stored, not with the format."""


class UnknownPredictionError(IngestError, LookupError):
    """Labels refer to prediction ids that were never ingested (or already purged)."""


class AlertPayloadError(MonitorsError, ValueError):
    """An Alertmanager webhook body is malformed or not version 4."""


class PayloadTooLarge(AlertPayloadError):
    """An Alertmanager webhook body is larger than the configured limit."""
