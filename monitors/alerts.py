"""Alert intake: Alertmanager webhook payloads (version 4) turned into actions.

``parse_webhook`` checks the size and the shape of a body and returns a
``WebhookPayload``; malformed input raises ``AlertPayloadError`` (and an oversized
body ``PayloadTooLarge``) with a message that says what is wrong.

``AlertRule`` s from config map an alert to an action on a model: label matchers
(``=``, ``!=``, ``=~``, ``!~``; regexes anchored as in Alertmanager), the label
naming the model and optionally the one naming the version, and the action
(``rollback``, ``pause`` or ``abort``). The first matching rule wins.

``AlertIntake`` adds deduplication: one alert is identified by its fingerprint and
``startsAt``, so Alertmanager's retries, repeat notifications and HA peers sending
the same alert yield one action. Resolved alerts never yield an action and never
undo one. "now" is passed in; the memory of seen alerts is bounded by age.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from monitors.errors import AlertPayloadError, ConfigError, PayloadTooLarge

__all__ = [
    "DEFAULT_MAX_BYTES",
    "WEBHOOK_SCHEMA",
    "AlertAction",
    "AlertEvent",
    "AlertIntake",
    "AlertRule",
    "IntakeResult",
    "Matcher",
    "WebhookPayload",
    "map_alert",
    "parse_timestamp",
    "parse_webhook",
]

DEFAULT_MAX_BYTES = 1 << 20
Action = Literal["rollback", "pause", "abort"]
_ACTIONS: frozenset[str] = frozenset({"rollback", "pause", "abort"})
_OPS = ("=~", "!~", "!=", "=")
_TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$")
_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # json has joined every valid pair


def parse_timestamp(text: str) -> datetime | None:
    """RFC 3339 as Alertmanager writes it (nanoseconds allowed) -> aware datetime.

    Alertmanager's zero time (``0001-01-01T00:00:00Z``) means "not set": None.
    """
    match = _TIMESTAMP.match(text)
    if not match:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    base, fraction, zone = match.groups()
    micro = (fraction or "").ljust(6, "0")[:6]
    zone = "+00:00" if zone == "Z" else zone
    try:
        moment = datetime.fromisoformat(f"{base}.{micro}{zone}").astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00:00-05:00 is past datetime's range in UTC
        raise ValueError(f"timestamp out of range: {text!r}") from None
    return None if moment <= _ZERO_TIME else moment


# What ``parse_webhook`` accepts, as JSON Schema (the API documents its request body
# with it): Alertmanager's webhook version 4. Timestamps are RFC 3339 as Alertmanager
# writes them; ``startsAt`` must be set (not the zero time), so its year starts at 1000.
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_SET_TIME = (
    r"^[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]"
    r":[0-5][0-9](\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])$"
)
_ANY_TIME = r"^(0001-01-01T00:00:00Z|" + _SET_TIME[1:-1] + ")$"
_STATUS = {"type": "string", "enum": ["firing", "resolved"]}
WEBHOOK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["version", "receiver", "status", "alerts", "groupKey"],
    "properties": {
        "version": {"type": "string", "enum": ["4"]},
        "receiver": {"type": "string"},
        "groupKey": {"type": "string"},
        "status": _STATUS,
        "truncatedAlerts": {"type": "integer", "minimum": 0},
        "groupLabels": _STRINGS,
        "commonLabels": _STRINGS,
        "commonAnnotations": _STRINGS,
        "externalURL": {"type": "string"},
        "alerts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["status", "labels", "startsAt", "fingerprint"],
                "properties": {
                    "status": _STATUS,
                    "labels": _STRINGS,
                    "annotations": _STRINGS,
                    "startsAt": {"type": "string", "pattern": _SET_TIME},
                    "endsAt": {"type": "string", "pattern": _ANY_TIME},
                    "fingerprint": {"type": "string", "minLength": 1},
                    "generatorURL": {"type": "string"},
                },
            },
        },
    },
}


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One alert of a webhook notification."""

    status: Literal["firing", "resolved"]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None
    fingerprint: str
    generator_url: str = ""

    @property
    def key(self) -> tuple[str, datetime]:
        """Identity for deduplication: the same alert instance, however often sent."""
        return (self.fingerprint, self.starts_at)

    @property
    def name(self) -> str:
        """The ``alertname`` label, or ``?``."""
        return self.labels.get("alertname", "?")


@dataclass(frozen=True, slots=True)
class WebhookPayload:
    """An Alertmanager webhook notification (payload version 4)."""

    receiver: str
    status: Literal["firing", "resolved"]
    group_key: str
    alerts: tuple[AlertEvent, ...]
    group_labels: Mapping[str, str] = field(default_factory=dict)
    truncated_alerts: int = 0


def _string_map(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise AlertPayloadError(f"{where} must be an object of strings")
    return {_text(name): _text(text) for name, text in value.items()}


def _text(value: str) -> str:
    """``value`` as text a database and a UTF-8 answer can hold: a NUL or a lone UTF-16
    surrogate (JSON's ``\\ud800``; Alertmanager never sends one, its encoder writes
    U+FFFD) becomes U+FFFD, the same way every time, so a repeat still matches its
    first delivery. Taken in as they were, they failed the action or the answer: a
    5xx, which Alertmanager retries forever. Two fingerprints or label names that
    differ only there become one; Alertmanager itself never sends such text."""
    if "\x00" not in value:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            return value
    return _UNSTORABLE.sub("\ufffd", value)


def _status(value: object, where: str) -> Literal["firing", "resolved"]:
    if value == "firing":
        return "firing"
    if value == "resolved":
        return "resolved"
    raise AlertPayloadError(f"{where} must be 'firing' or 'resolved', got {value!r}")


def _alert(index: int, raw: object) -> AlertEvent:
    where = f"alerts[{index}]"
    if not isinstance(raw, dict):
        raise AlertPayloadError(f"{where} must be an object")
    for key in ("status", "labels", "startsAt", "fingerprint"):
        if key not in raw:
            raise AlertPayloadError(f"{where} lacks {key!r}")
    fingerprint = raw["fingerprint"]
    if not isinstance(fingerprint, str) or not fingerprint:
        raise AlertPayloadError(f"{where}.fingerprint must be a non-empty string")
    fingerprint = _text(fingerprint)
    starts_at = _timestamp(raw["startsAt"], f"{where}.startsAt")
    ends_at = _timestamp(raw.get("endsAt", "0001-01-01T00:00:00Z"), f"{where}.endsAt")
    if starts_at is None:
        raise AlertPayloadError(f"{where}.startsAt must be set")
    generator = _string(raw.get("generatorURL", ""), f"{where}.generatorURL")
    return AlertEvent(
        status=_status(raw["status"], f"{where}.status"),
        labels=_string_map(raw["labels"], f"{where}.labels"),
        annotations=_string_map(raw.get("annotations", {}), f"{where}.annotations"),
        starts_at=starts_at,
        ends_at=ends_at,
        fingerprint=fingerprint,
        generator_url=generator,
    )


def _timestamp(value: object, where: str) -> datetime | None:
    if not isinstance(value, str):
        raise AlertPayloadError(f"{where} must be an RFC 3339 string, got {value!r}")
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise AlertPayloadError(f"{where}: {exc}") from None


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise AlertPayloadError(f"{where} must be a string, got {type(value).__name__}")
    return _text(value)


def parse_webhook(body: bytes | str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> WebhookPayload:
    """Parse an Alertmanager webhook body; raise ``AlertPayloadError`` if unusable."""
    raw_bytes = body.encode() if isinstance(body, str) else body
    if len(raw_bytes) > max_bytes:
        raise PayloadTooLarge(
            f"webhook body of {len(raw_bytes)} bytes exceeds the limit of {max_bytes} bytes"
        )
    try:
        data = json.loads(raw_bytes)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AlertPayloadError(f"webhook body is not valid JSON: {exc}") from None
    except RecursionError:  # the decoder recurses per level: [[[[... within the size limit
        raise AlertPayloadError("webhook body is nested too deeply to be a notification") from None
    if not isinstance(data, dict):
        raise AlertPayloadError("webhook body must be a JSON object")
    if data.get("version") != "4":
        raise AlertPayloadError(
            f"unsupported webhook payload version {data.get('version')!r}; expected '4'"
        )
    for key in ("receiver", "status", "alerts", "groupKey"):
        if key not in data:
            raise AlertPayloadError(f"webhook payload lacks {key!r}")
    if not isinstance(data["receiver"], str) or not isinstance(data["groupKey"], str):
        raise AlertPayloadError("receiver and groupKey must be strings")
    if not isinstance(data["alerts"], list):
        raise AlertPayloadError("alerts must be a list")
    # Fields this intake does not use are still Alertmanager's: a wrong type means the
    # sender is not Alertmanager, and the whole body is refused (as its schema says).
    truncated = data.get("truncatedAlerts", 0)
    if isinstance(truncated, float) and truncated.is_integer():  # JSON's 3.0 is an integer
        truncated = int(truncated)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        raise AlertPayloadError(f"truncatedAlerts must be a count, got {truncated!r}")
    _string(data.get("externalURL", ""), "externalURL")
    for common in ("commonLabels", "commonAnnotations"):
        _string_map(data.get(common, {}), common)
    return WebhookPayload(
        receiver=_text(data["receiver"]),
        status=_status(data["status"], "status"),
        group_key=_text(data["groupKey"]),
        alerts=tuple(_alert(i, a) for i, a in enumerate(data["alerts"])),
        group_labels=_string_map(data.get("groupLabels", {}), "groupLabels"),
        truncated_alerts=truncated,
    )


# -- mapping rules ---------------------------------------------------------------------


def _op(value: str) -> Literal["=", "!=", "=~", "!~"]:
    for op in ("=~", "!~", "!=", "="):
        if value == op:
            return op
    raise ConfigError(f"unknown matcher operator {value!r}")


def _action(value: object, rule: str) -> Action:
    for action in ("rollback", "pause", "abort"):
        if value == action:
            return action
    raise ConfigError(
        f"alert rule {rule!r}: action must be one of {sorted(_ACTIONS)}, got {value!r}"
    )


@dataclass(frozen=True, slots=True)
class Matcher:
    """A label matcher as Alertmanager writes it: ``name op value``."""

    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ConfigError(f"matcher {self.name!r}: unknown operator {self.op!r}")
        if self.op in ("=~", "!~"):
            try:
                compiled = re.compile(f"(?:{self.value})")
            except re.error as exc:
                raise ConfigError(f"matcher {self.name}{self.op}{self.value!r}: {exc}") from None
            object.__setattr__(self, "_regex", compiled)

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """``severity=~"critical|page"`` or ``team=ml`` -> Matcher."""
        match = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", text)
        if not match:
            raise ConfigError(f"cannot parse label matcher {text!r}")
        name, op, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        return cls(name=name, op=_op(op), value=value)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Alertmanager semantics: a missing label is the empty string."""
        actual = labels.get(self.name, "")
        if self._regex is not None:
            hit = self._regex.fullmatch(actual) is not None
            return hit if self.op == "=~" else not hit
        return (actual == self.value) if self.op == "=" else (actual != self.value)


@dataclass(frozen=True, slots=True)
class AlertRule:
    """Map alerts matching all ``matchers`` to ``action`` on the model they name."""

    name: str
    action: Action
    matchers: tuple[Matcher, ...] = ()
    model_label: str = "model"
    version_label: str | None = None

    def __post_init__(self) -> None:
        if self.action not in _ACTIONS:
            raise ConfigError(
                f"alert rule {self.name!r}: action must be one of {sorted(_ACTIONS)}, "
                f"got {self.action!r}"
            )
        if not self.model_label:
            raise ConfigError(f"alert rule {self.name!r}: model_label must not be empty")

    @classmethod
    def from_config(cls, options: Mapping[str, Any], *, name: str = "") -> AlertRule:
        """``{match: [...] or {label: value}, action, model_label, version_label}``."""
        rule_name = str(options.get("name") or name or "rule")
        unknown = sorted(set(options) - {"name", "match", "action", "model_label", "version_label"})
        if unknown:
            raise ConfigError(f"alert rule {rule_name!r}: unknown key(s) {', '.join(unknown)}")
        raw = options.get("match", [])
        if isinstance(raw, Mapping):
            matchers = tuple(Matcher(name=str(k), op="=", value=str(v)) for k, v in raw.items())
        elif isinstance(raw, list) and all(isinstance(m, str) for m in raw):
            matchers = tuple(Matcher.parse(m) for m in raw)
        else:
            raise ConfigError(
                f"alert rule {rule_name!r}: 'match' must be a mapping or a list of matchers"
            )
        version_label = options.get("version_label")
        if version_label is not None and not isinstance(version_label, str):
            raise ConfigError(f"alert rule {rule_name!r}: 'version_label' must be a string")
        return cls(
            name=rule_name,
            action=_action(options.get("action"), rule_name),
            matchers=matchers,
            model_label=str(options.get("model_label", "model")),
            version_label=version_label,
        )

    def matches(self, alert: AlertEvent) -> bool:
        """True when every matcher accepts the alert's labels and the model is named."""
        return bool(alert.labels.get(self.model_label)) and all(
            m.matches(alert.labels) for m in self.matchers
        )


@dataclass(frozen=True, slots=True)
class AlertAction:
    """What an alert asks for: ``action`` on ``model`` (and ``version`` if named)."""

    action: Action
    model: str
    version: str | None
    rule: str
    alert: str
    fingerprint: str
    starts_at: datetime
    reason: str

    @property
    def key(self) -> tuple[str, datetime]:
        """The alert instance this action came from (``AlertEvent.key``)."""
        return (self.fingerprint, self.starts_at)


def map_alert(rules: Sequence[AlertRule], alert: AlertEvent) -> AlertAction | None:
    """The action the first matching rule assigns to a firing ``alert``, else None."""
    if alert.status != "firing":
        return None
    for rule in rules:
        if rule.matches(alert):
            model = alert.labels[rule.model_label]
            version = alert.labels.get(rule.version_label) if rule.version_label else None
            target = f"{model}@{version}" if version else model
            return AlertAction(
                action=rule.action,
                model=model,
                version=version or None,
                rule=rule.name,
                alert=alert.name,
                fingerprint=alert.fingerprint,
                starts_at=alert.starts_at,
                reason=(
                    f"alert {alert.name} (fingerprint {alert.fingerprint}, firing since "
                    f"{alert.starts_at.isoformat()}) matched rule {rule.name}: "
                    f"{rule.action} {target}"
                ),
            )
    return None


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """What one webhook delivery produced.

    ``remembered``: the alert keys this delivery added to the memory, with when first
    seen, for a caller that persists the memory across restarts.
    """

    actions: tuple[AlertAction, ...]
    duplicates: int
    unmatched: int
    resolved: int
    remembered: tuple[tuple[tuple[str, datetime], datetime], ...] = ()


class AlertIntake:
    """Parse, map and deduplicate webhook deliveries; safe to call from threads.

    ``remember`` bounds the memory of seen alerts: an alert instance is forgotten
    that long after it was first seen (Alertmanager stops repeating a resolved alert
    long before). ``seen`` lets a caller restore the memory after a restart.
    """

    def __init__(
        self,
        rules: Sequence[AlertRule],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        remember: timedelta = timedelta(days=7),
        seen: Mapping[tuple[str, datetime], datetime] | None = None,
    ) -> None:
        self._rules = tuple(rules)
        self._max_bytes = max_bytes
        self._remember = remember
        self._seen: dict[tuple[str, datetime], datetime] = dict(seen or {})
        self._lock = threading.Lock()

    def seen(self) -> dict[tuple[str, datetime], datetime]:
        """Alert keys already acted on (or found resolved), with when first seen."""
        with self._lock:
            return dict(self._seen)

    def set_rules(self, rules: Sequence[AlertRule]) -> None:
        """New routes (a config reload); the memory of seen alerts is kept."""
        with self._lock:
            self._rules = tuple(rules)

    def forget(self, keys: Sequence[tuple[str, datetime]]) -> None:
        """Unsee ``keys``: their actions failed, so a retry must act rather than count
        as a duplicate."""
        with self._lock:
            for key in keys:
                self._seen.pop(key, None)

    def handle(self, body: bytes | str, *, now: datetime) -> IntakeResult:
        """Parse ``body`` and return the actions not taken before."""
        payload = parse_webhook(body, max_bytes=self._max_bytes)
        return self.handle_payload(payload, now=now)

    def handle_payload(self, payload: WebhookPayload, *, now: datetime) -> IntakeResult:
        """``handle`` for an already parsed payload."""
        actions: list[AlertAction] = []
        remembered: dict[tuple[str, datetime], datetime] = {}
        duplicates = unmatched = resolved = 0
        with self._lock:
            horizon = now - self._remember
            for key in [k for k, first in self._seen.items() if first < horizon]:
                del self._seen[key]
            for alert in payload.alerts:
                if alert.status == "resolved":
                    # Remembered so that a late "firing" retry of the same instance
                    # cannot act after its resolution; nothing is ever undone.
                    if alert.key not in self._seen:
                        self._seen[alert.key] = remembered[alert.key] = now
                    resolved += 1
                    continue
                if alert.key in self._seen:
                    duplicates += 1
                    continue
                action = map_alert(self._rules, alert)
                if action is None:
                    unmatched += 1
                    continue
                self._seen[alert.key] = remembered[alert.key] = now
                actions.append(action)
        return IntakeResult(
            actions=tuple(actions),
            duplicates=duplicates,
            unmatched=unmatched,
            resolved=resolved,
            remembered=tuple(remembered.items()),
        )
