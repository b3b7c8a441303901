"""An Alertmanager storm on a live canary: duplicates, resolved before firing,
oversized, unauthenticated and malformed posts, from several threads at once.

The daemon (a real subprocess, SQLite, the file router, the simulated workload posting
its outcomes with a deployer token) runs a canary of v1.1.0 with tokens on: only the
``alerts`` token may post to ``/v1/alerts``, and bodies over ``server.max_body_bytes``
(64 KiB here) are refused. While the canary takes traffic, eight threads send:

- the same firing rollback alert about v1.1.0, twenty times;
- alert instances whose ``resolved`` notification (stamped later) arrives before
  their ``firing`` one;
- oversized bodies, with a ``Content-Length`` and chunked (413), and without a token
  (401: roles are checked before a body is read);
- no token, an unknown token, a non-Bearer header (401), a deployer token (403);
- malformed bodies with the alerts token: not JSON, not UTF-8, not an object, the
  wrong payload version, a bad timestamp, nothing, arrays nested 20,000 deep within
  the size limit (422, as problem+json; the last was a 500);
- an alert about another model whose fingerprint and labels hold a lone surrogate
  (``"\\ud800"``: valid JSON, not text) and a NUL: taken, with U+FFFD in their place
  (200; they were a 503 and a 500).

Then: no answer was a 5xx and each kind got its status; exactly one post acted, and
the rollout has exactly one applied rollback (explain), the candidate one move to
``archived`` (the registry's history) and the alert histogram one rollback. v1.1.0
is out of production and out of the routing table. The alert resolving afterwards,
a late repeat and a new firing instance about v1.1.0 change nothing. The rollout's
decisions follow the policy's steps once each, and every invariant holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from controller.http.auth import generate_token, hash_token
from monitors.testing import wait_until
from serving.route import read_table
from tests.controller.stack import Stack, build_stack
from tests.invariants import decisions_follow_policy

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]

ALERT = "CandidateErrorRateHigh"
STEPS = [10, 50, 100]
LIMIT = 64 * 1024  # server.max_body_bytes
ZERO = "0001-01-01T00:00:00Z"  # Alertmanager's "not set"
DUPLICATES = 20
PAIRS = 6


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _webhook(status: str, fingerprint: str, starts: datetime, *, ends: datetime | None = None,
             pad: int = 0) -> dict[str, Any]:  # fmt: skip
    """An Alertmanager (version 4) notification with one alert about fraud v1.1.0;
    ``pad`` characters of annotation make it as large as wanted."""
    alert = {"status": status, "fingerprint": fingerprint, "startsAt": _stamp(starts),
             "endsAt": _stamp(ends) if ends else ZERO,
             "labels": {"alertname": ALERT, "model": "fraud", "version": "v1.1.0"},
             "annotations": {"summary": "x" * pad}}  # fmt: skip
    return {"version": "4", "receiver": "modelreg", "status": status, "groupKey": "{}:{}",
            "alerts": [alert]}  # fmt: skip


class Tokens:
    def __init__(self) -> None:
        self.admin, self.deployer, self.alerts = (generate_token() for _ in range(3))

    def file(self) -> dict[str, Any]:
        return {"tokens": [
            {"identity": "tester", "roles": ["admin"], "hash": hash_token(self.admin)},
            {"identity": "workload", "roles": ["deployer"], "hash": hash_token(self.deployer)},
            {"identity": "alertmanager", "roles": ["alerts"], "hash": hash_token(self.alerts)},
        ]}  # fmt: skip


def _stack(tmp_path: Path, tokens: Tokens) -> Stack:
    """The fault suite's stack with tokens, a body limit and the alert route; long steps,
    so that nothing but the alert ends the canary while the storm lasts."""
    stack = build_stack(tmp_path, strategy={"kind": "canary", "steps": STEPS,
                                            "step_duration": 30})  # fmt: skip
    (tmp_path / "tokens.yaml").write_text(yaml.safe_dump(tokens.file()))
    data = yaml.safe_load(stack.config.read_text())
    data["server"].update(tokens_file=str(tmp_path / "tokens.yaml"), max_body_bytes=LIMIT)
    data["alerts"] = [{"name": "candidate-errors", "match": {"alertname": ALERT},
                       "action": "rollback", "version_label": "version"}]  # fmt: skip
    stack.config.write_text(yaml.safe_dump(data))
    return stack


Sent = tuple[str, httpx.Response]


class Poster:
    """Posts to ``/v1/alerts`` as a given caller; each post is kept with its kind."""

    def __init__(self, url: str, tokens: Tokens) -> None:
        self.url = f"{url}/v1/alerts"
        self.tokens = tokens

    def post(self, kind: str, body: dict[str, Any] | bytes | Iterator[bytes], *,
             auth: str | None = "alerts") -> Sent:  # fmt: skip
        headers = {"Content-Type": "application/json"}
        if auth == "alerts":
            headers["Authorization"] = f"Bearer {self.tokens.alerts}"
        elif auth is not None:
            headers["Authorization"] = auth
        if isinstance(body, dict):
            reply = httpx.post(self.url, json=body, headers=headers, timeout=30)
        else:
            reply = httpx.post(self.url, content=body, headers=headers, timeout=30)
        return kind, reply


def _storm(poster: Poster, tokens: Tokens, t0: datetime) -> list[Callable[[], list[Sent]]]:
    """Every post of the storm, as tasks for a thread pool (a pair is one task, in order)."""
    firing = _webhook("firing", "fp-main", t0)
    big = _webhook("firing", "fp-big", t0, pad=2 * LIMIT)  # would act, were it read

    def once(kind: str, body: dict[str, Any] | bytes, auth: str | None = "alerts"
             ) -> Callable[[], list[Sent]]:  # fmt: skip
        return lambda: [poster.post(kind, body, auth=auth)]

    def chunked() -> list[Sent]:
        data = json.dumps(big).encode()
        chunks = (data[i : i + 8192] for i in range(0, len(data), 8192))
        return [poster.post("oversized", chunks)]

    def pair(n: int) -> Callable[[], list[Sent]]:
        starts = t0 - timedelta(minutes=n + 1)
        resolved = _webhook("resolved", f"fp-pair-{n}", starts, ends=t0)
        late = _webhook("firing", f"fp-pair-{n}", starts)
        return lambda: [poster.post("pair resolved", resolved),
                        poster.post("pair firing", late)]  # fmt: skip

    deployer = f"Bearer {tokens.deployer}"
    tasks = [once("firing", firing) for _ in range(DUPLICATES)]
    tasks += [pair(n) for n in range(PAIRS)]
    tasks += [once("oversized", big) for _ in range(4)] + [chunked, chunked]
    tasks += [once("unauthenticated", big, auth=None) for _ in range(2)]
    tasks += [once("unauthenticated", firing, auth=None) for _ in range(3)]
    tasks += [once("unauthenticated", firing, auth=f"Bearer {generate_token()}")
              for _ in range(3)]  # fmt: skip
    tasks += [once("unauthenticated", firing, auth=f"Basic {tokens.alerts}")]
    tasks += [once("forbidden", firing, auth=deployer) for _ in range(3)]
    bad_time = _webhook("firing", "fp-bad", t0)
    bad_time["alerts"][0]["startsAt"] = "yesterday"
    unstorable = _webhook("firing", "fp-\ud800", t0)
    unstorable["alerts"][0]["labels"] |= {"model": "no\ud800such", "team": "a\x00b"}
    tasks += [once("unstorable", json.dumps(unstorable).encode())]  # JSON escapes them
    deep = b'{"version": "4", "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"  # within LIMIT
    malformed: list[dict[str, Any] | bytes] = [
        b'{"version": "4", "alerts": [', b"\xff\xfe\x00\x80", b"[]", b"",
        {**firing, "version": "3"}, bad_time, deep,
    ]  # fmt: skip
    tasks += [once("malformed", body) for body in malformed]
    return tasks


EXPECTED = {"firing": 200, "pair resolved": 200, "pair firing": 200, "unstorable": 200,
            "oversized": 413,
            "unauthenticated": 401, "forbidden": 403, "malformed": 422}  # fmt: skip


def _get(stack: Stack, tokens: Tokens, path: str, **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {tokens.admin}"}
    reply = httpx.get(f"{stack.url}{path}", params=params, headers=headers, timeout=10)
    assert reply.status_code == 200, (path, reply.status_code, reply.text)
    return reply.json()


def _rollback_count(stack: Stack) -> str:
    """The alert histogram's count of rollbacks acted on (``none`` before the first)."""
    name = 'modelreg_alert_action_seconds_count{action="rollback"}'
    lines = httpx.get(f"{stack.url}/metrics", timeout=10).text.splitlines()
    found = [line for line in lines if line.startswith(name)]
    return found[0].rsplit(" ", 1)[1] if found else "none"


@pytest.mark.timeout(300)
def test_an_alert_storm_rolls_the_canary_back_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = Tokens()
    stack = _stack(tmp_path, tokens)
    stack.register("1.0.0", "production")
    stack.start_daemon()
    monkeypatch.setenv("MODELREG_TOKEN", tokens.deployer)  # the workload's, for ingest
    stack.start_workload()
    poster = Poster(stack.url, tokens)
    try:
        stack.register("1.1.0")

        def canary() -> dict[str, Any] | None:
            rows = _get(stack, tokens, "/v1/rollouts", model="fraud")
            return next((r for r in rows if r["treatment"] == "v1.1.0" and r["weight"] > 0),
                        None)  # fmt: skip

        assert wait_until(lambda: canary() is not None, timeout=60), stack.log_tail()
        rollout = canary()
        assert rollout is not None
        rid = rollout["id"]
        assert rollout["phase"] == "progressing", rollout
        t0 = datetime.now(UTC)  # the daemon judges alert times by the wall clock
        with ThreadPoolExecutor(max_workers=8) as pool:
            sent = [s for batch in pool.map(lambda task: task(), _storm(poster, tokens, t0))
                    for s in batch]  # fmt: skip

        assert [(k, r.status_code, r.text) for k, r in sent if r.status_code >= 500] == []
        wrong = [(k, r.status_code, r.text[:200]) for k, r in sent
                 if r.status_code != EXPECTED[k]]  # fmt: skip
        assert wrong == [], wrong
        refused = [(k, r.headers.get("content-type")) for k, r in sent if r.status_code >= 400]
        assert all(t == "application/problem+json" for _, t in refused), refused
        answers = {k: [r.json() for kind, r in sent if kind == k] for k in EXPECTED}
        acted = [a for k in ("firing", "pair firing") for body in answers[k]
                 for a in body["actions"] if a["acted"]]  # fmt: skip
        assert len(acted) == 1, acted  # twenty posts of one alert: one action
        assert (acted[0]["rollout"], acted[0]["result"]) == (rid, "rolled_back"), acted
        assert sum(b["duplicates"] for b in answers["firing"]) == DUPLICATES - 1
        (unstorable,) = answers["unstorable"]
        assert not [a for a in unstorable["actions"] if a["acted"]], unstorable  # no such model
        late = [(b["actions"], b["duplicates"]) for b in answers["pair firing"]]
        assert late == [([], 1)] * PAIRS  # resolved first: the late firing is not acted on
        assert [b["resolved"] for b in answers["pair resolved"]] == [1] * PAIRS

        # Exactly one rollback: in the rollout's decisions, the registry and the metric.
        def applied_rollbacks() -> list[dict[str, Any]]:
            decisions = _get(stack, tokens, f"/v1/rollouts/{rid}/explain", limit=10_000)
            return [d for d in decisions["decisions"]
                    if d["action"] == "rollback" and d["applied"]]  # fmt: skip

        assert len(applied_rollbacks()) == 1, applied_rollbacks()
        done = _get(stack, tokens, f"/v1/rollouts/{rid}")
        assert done["phase"] == "rolled_back", done
        assert ALERT in done["reason"], done

        def moves() -> list[dict[str, Any]]:
            history = _get(stack, tokens, "/v1/models/fraud/history")
            return [t for t in history if t["version"] == "v1.1.0" and t["from_stage"]]

        assert [(t["from_stage"], t["to_stage"]) for t in moves()] == [("staging", "archived")]
        assert _rollback_count(stack) == "1.0"
        assert _get(stack, tokens, "/v1/models/fraud/resolve")["version"] == "v1.0.0"
        route = read_table(stack.home / "routes.json")["fraud"]
        assert [(b.version, b.weight) for b in route.backends if b.weight > 0] == [("v1.0.0", 100)]

        # Afterwards: the alert resolves, Alertmanager repeats it late, and the same rule
        # fires anew about v1.1.0. Nothing moves: the rollout is over, production is not
        # v1.1.0, nothing is promoted back.
        history = _get(stack, tokens, "/v1/models/fraud/history")
        after = [poster.post("resolved", _webhook("resolved", "fp-main", t0, ends=t0)),
                 poster.post("repeat", _webhook("firing", "fp-main", t0)),
                 poster.post("new", _webhook("firing", "fp-new", datetime.now(UTC)))]  # fmt: skip
        assert [r.status_code for _, r in after] == [200, 200, 200], [r.text for _, r in after]
        resolved, repeat, new = (r.json() for _, r in after)
        assert (resolved["resolved"], resolved["actions"]) == (1, [])
        assert (repeat["duplicates"], repeat["actions"]) == (1, [])
        assert [a["acted"] for a in new["actions"]] == [False], new
        assert _get(stack, tokens, "/v1/models/fraud/history") == history
        assert _get(stack, tokens, "/v1/models/fraud/resolve")["version"] == "v1.0.0"
        assert len(applied_rollbacks()) == 1
        rows = _get(stack, tokens, "/v1/rollouts", model="fraud")
        assert [(r["id"], r["phase"]) for r in rows] == [(rid, "rolled_back")], rows
        assert _rollback_count(stack) == "1.0"
        assert stack.procs["daemon"].poll() is None
        decisions = _get(stack, tokens, f"/v1/rollouts/{rid}/explain", limit=10_000)["decisions"]
        found = decisions_follow_policy(rid, decisions, [float(s) for s in STEPS])
        assert found == [], found
    finally:
        stack.stop()

    stack.check_invariants()
