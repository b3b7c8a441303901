"""The audit event hash is pinned: every stored chain was hashed this way."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from registry.audit import event_hash

# Digests computed by the implementation that wrote the existing chains.
PINNED = [
    (
        {
            "id": 7,
            "at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
            "actor": "alice",
            "action": "register",
            "target": "fraud-v1.2.0",
            "before": {"stage": "dev"},
            "after": {
                "version": "v1.2.0",
                "when": datetime(2026, 1, 2, tzinfo=UTC),
                "tags": ["é", 1.5, None],
            },
            "reason": "why",
            "prev_hash": "a" * 64,
        },
        "758a3643d28299c6bb47f4e6c0a1c4549e5fac45ddd41256e23edf230d151ff5",
    ),
    (
        {
            "id": 1,
            "at": datetime(2026, 1, 2, 3, 4, 5),
            "actor": "bob",
            "action": "create_model",
            "target": "m",
            "before": None,
            "after": None,
            "reason": None,
            "prev_hash": "0" * 64,
        },
        "29d4092dcaefbeccd51b831329451315bb40a613d00d38199d049651c0fb6537",
    ),
]


@pytest.mark.parametrize(("event", "digest"), PINNED, ids=["full", "naive-time"])
def test_event_hash_is_unchanged(event: dict[str, object], digest: str) -> None:
    """Non-ASCII text, a datetime inside ``after`` (``default=str``), a naive time and
    empty fields hash as they always did, so old chains still verify."""
    assert event_hash(**event) == digest  # type: ignore[arg-type]
