"""Alertmanager webhook intake: parsing, rules, deduplication."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitors.alerts import (
    AlertIntake,
    AlertRule,
    Matcher,
    parse_timestamp,
    parse_webhook,
)
from monitors.errors import AlertPayloadError, ConfigError, PayloadTooLarge

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def alert(
    status: str = "firing",
    fingerprint: str = "a1b2",
    starts: str = "2026-01-01T11:59:00.123456789Z",
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": "HighErrorRate",
            "model": "fraud",
            "version": "2.0.0",
            "severity": "critical",
        }
        | labels,
        "annotations": {"summary": "error rate 7%"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-01-01T12:05:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
    }


def payload(*alerts: dict[str, Any], group_key: str = '{}:{alertname="HighErrorRate"}') -> bytes:
    return json.dumps(
        {
            "version": "4",
            "groupKey": group_key,
            "truncatedAlerts": 0,
            "status": alerts[0]["status"] if alerts else "firing",
            "receiver": "modelreg",
            "groupLabels": {"alertname": "HighErrorRate"},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": list(alerts),
        }
    ).encode()


RULES = [
    AlertRule.from_config(
        {
            "name": "crit",
            "match": ["severity=critical", "model=~fr.*"],
            "action": "rollback",
            "model_label": "model",
            "version_label": "version",
        }
    ),
    AlertRule.from_config({"name": "warn", "match": {"severity": "warning"}, "action": "pause"}),
]


class TestParse:
    def test_version_4_payload(self) -> None:
        """Receiver, status, group key and each alert's fields are read."""
        parsed = parse_webhook(payload(alert()))
        assert (parsed.receiver, parsed.status) == ("modelreg", "firing")
        assert parsed.group_key == '{}:{alertname="HighErrorRate"}'
        (only,) = parsed.alerts
        assert only.fingerprint == "a1b2"
        assert only.starts_at == datetime(2026, 1, 1, 11, 59, 0, 123456, tzinfo=UTC)
        assert only.ends_at is None  # Alertmanager's zero time means "not set"
        assert only.annotations["summary"] == "error rate 7%"

    def test_timestamps_with_offsets(self) -> None:
        """RFC 3339 offsets are normalised to UTC."""
        assert parse_timestamp("2026-01-01T13:00:00+01:00") == datetime(2026, 1, 1, 12, tzinfo=UTC)
        with pytest.raises(ValueError, match="RFC 3339"):
            parse_timestamp("yesterday")

    @pytest.mark.parametrize(
        ("body", "match"),
        [
            (b"{not json", "not valid JSON"),
            (b"[]", "must be a JSON object"),
            (json.dumps({"version": "3"}).encode(), "unsupported webhook payload version '3'"),
            (
                json.dumps(
                    {"version": "4", "status": "firing", "receiver": "r", "alerts": []}
                ).encode(),
                "lacks 'groupKey'",
            ),
            (payload(alert() | {"startsAt": "soon"}), r"alerts\[0\].startsAt: not an RFC 3339"),
            (
                payload({k: v for k, v in alert().items() if k != "fingerprint"}),
                r"alerts\[0\] lacks 'fingerprint'",
            ),
            (payload(alert(status="pending")), "must be 'firing' or 'resolved'"),
            (payload(alert() | {"labels": {"a": 1}}), "labels must be an object of strings"),
            (payload(alert() | {"startsAt": 5}), r"startsAt must be an RFC 3339 string"),
            (payload(alert() | {"generatorURL": {}}), r"generatorURL must be a string"),
            (payload(alert() | {"endsAt": "9999-12-31T23:00:00-05:00"}), "out of range"),
            (b"[" * 50_000 + b"]" * 50_000, "nested too deeply to be a notification"),
        ],
    )
    def test_malformed(self, body: bytes, match: str) -> None:
        """Each malformed body gets a message that says what is wrong."""
        with pytest.raises(AlertPayloadError, match=match):
            parse_webhook(body)

    def test_text_a_database_cannot_hold_becomes_the_replacement_character(self) -> None:
        """A lone surrogate (JSON's "\\ud800") or a NUL, in a fingerprint, a label or the
        group key, is U+FFFD, the same way each time; everything else is kept as sent."""
        body = payload(alert(fingerprint="f\ud800", model="fr\x00ud", note="\U0001f600"),
                       group_key="\udfff")  # fmt: skip
        for _ in range(2):
            parsed = parse_webhook(body)
            (event,) = parsed.alerts
            assert event.fingerprint == "f\ufffd"
            assert event.labels["model"] == "fr\ufffdud"
            assert event.labels["note"] == "\U0001f600"  # a valid pair, joined by json
            assert parsed.group_key == "\ufffd"

    def test_too_large(self) -> None:
        """A body over the limit is refused before parsing."""
        with pytest.raises(PayloadTooLarge, match="exceeds the limit of 100 bytes"):
            parse_webhook(payload(alert()), max_bytes=100)


class TestRules:
    @pytest.mark.parametrize(
        ("text", "labels", "expected"),
        [
            ("severity=critical", {"severity": "critical"}, True),
            ('severity!="critical"', {"severity": "critical"}, False),
            ("team=~ml|data", {"team": "data"}, True),
            ("team=~ml", {"team": "mlops"}, False),  # anchored like Alertmanager
            ("team!~ml", {}, True),
            ("team=", {}, True),  # a missing label equals the empty string
        ],
    )
    def test_matchers(self, text: str, labels: dict[str, str], expected: bool) -> None:
        """Matchers follow Alertmanager's semantics."""
        assert Matcher.parse(text).matches(labels) is expected

    def test_bad_rules(self) -> None:
        """Unknown actions, keys and bad regexes are configuration errors."""
        with pytest.raises(ConfigError, match="action must be one of"):
            AlertRule.from_config({"match": {}, "action": "reboot"})
        with pytest.raises(ConfigError, match="unknown key"):
            AlertRule.from_config({"match": {}, "action": "pause", "labels": {}})
        with pytest.raises(ConfigError, match="team=~"):
            Matcher.parse("team=~(")

    def test_mapping(self) -> None:
        """The first matching rule names the action, the model and the version."""
        intake = AlertIntake(RULES)
        result = intake.handle(payload(alert()), now=NOW)
        (action,) = result.actions
        assert (action.action, action.model, action.version, action.rule) == (
            "rollback",
            "fraud",
            "2.0.0",
            "crit",
        )
        assert "matched rule crit: rollback fraud@2.0.0" in action.reason
        warn = intake.handle(payload(alert(fingerprint="w", severity="warning")), now=NOW)
        assert [(a.action, a.version) for a in warn.actions] == [("pause", None)]

    def test_unmatched_and_modelless_alerts(self) -> None:
        """Alerts no rule matches, or without the model label, yield no action."""
        intake = AlertIntake(RULES)
        result = intake.handle(
            payload(alert(severity="info"), alert(fingerprint="x", model="")), now=NOW
        )
        assert (result.actions, result.unmatched) == ((), 2)


class TestDeduplication:
    def test_retries_and_ha_peers_act_once(self) -> None:
        """The same alert (fingerprint + startsAt) from retries or peers acts once."""
        intake = AlertIntake(RULES)
        first = intake.handle(payload(alert()), now=NOW)
        retry = intake.handle(payload(alert()), now=NOW + timedelta(seconds=10))
        peer = intake.handle(payload(alert(), group_key="peer-b"), now=NOW + timedelta(seconds=11))
        assert len(first.actions) == 1
        assert (retry.actions, retry.duplicates) == ((), 1)
        assert (peer.actions, peer.duplicates) == ((), 1)

    def test_a_new_firing_of_the_same_rule_acts_again(self) -> None:
        """A new startsAt is a new alert instance."""
        intake = AlertIntake(RULES)
        intake.handle(payload(alert()), now=NOW)
        again = intake.handle(payload(alert(starts="2026-01-01T13:00:00Z")), now=NOW)
        assert len(again.actions) == 1

    def test_resolved_never_undoes_or_acts(self) -> None:
        """Resolution yields no action; a late firing retry after it does not act."""
        intake = AlertIntake(RULES)
        assert len(intake.handle(payload(alert()), now=NOW).actions) == 1
        resolved = intake.handle(payload(alert(status="resolved")), now=NOW)
        assert (resolved.actions, resolved.resolved) == ((), 1)
        other = AlertIntake(RULES)
        other.handle(payload(alert(status="resolved")), now=NOW)
        assert other.handle(payload(alert()), now=NOW).actions == ()

    def test_new_rules_keep_the_memory(self) -> None:
        """A config reload swaps the routes in place: an alert already acted on stays a
        duplicate, and the new routes decide what a new alert does."""
        intake = AlertIntake(RULES)
        (acted,) = intake.handle(payload(alert()), now=NOW).actions
        assert acted.action == "rollback"
        pause = AlertRule.from_config({"name": "soft", "match": ["severity=critical"],
                                       "action": "pause", "model_label": "model"})  # fmt: skip
        intake.set_rules([pause])
        assert intake.handle(payload(alert()), now=NOW).duplicates == 1
        (new,) = intake.handle(payload(alert(fingerprint="n")), now=NOW).actions
        assert (new.action, new.rule) == ("pause", "soft")

    def test_a_forgotten_alert_acts_on_its_retry(self) -> None:
        """forget(): an action that failed is not a duplicate when Alertmanager retries."""
        intake = AlertIntake(RULES)
        (action,) = intake.handle(payload(alert()), now=NOW).actions
        intake.forget([action.key])
        assert len(intake.handle(payload(alert()), now=NOW).actions) == 1

    def test_memory_is_bounded_by_age(self) -> None:
        """Seen alerts are forgotten after `remember`; the memory can be restored."""
        intake = AlertIntake(RULES, remember=timedelta(hours=1))
        intake.handle(payload(alert()), now=NOW)
        restored = AlertIntake(RULES, seen=intake.seen())
        assert restored.handle(payload(alert()), now=NOW).duplicates == 1
        later = intake.handle(payload(alert(fingerprint="z")), now=NOW + timedelta(hours=2))
        assert len(later.actions) == 1
        assert len(intake.seen()) == 1
