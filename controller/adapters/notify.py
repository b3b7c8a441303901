"""Decision notifications: Slack-compatible JSON posted to webhooks, off the caller's thread.

The daemon calls ``Notifier.post(event)`` when a rollout is promoted, rolled
back, waits for approval, or fails. ``post`` never blocks and never raises: the
event goes into a bounded queue that one background thread delivers, retrying
each webhook with exponential backoff. When the queue is full the *oldest*
waiting delivery is dropped (the newest news matters most) and counted in
``stats().dropped``; the daemon exports that counter. ``close(timeout_s)``
stops intake and drains what is queued until the timeout, then abandons the
rest (counted as dropped).

Payload: ``{"text": <one-line fallback>, "blocks": [...]}``, which Slack
incoming webhooks, Mattermost and Rocket.Chat accept (the latter two use
``text``). Model names and reasons are escaped for Slack's mrkdwn.

The daemon's config has a list of targets, each validated by ``NotificationTarget``
(here, next to the notifier it configures; ``controller.config`` validates the
``notifications:`` list with it). ``build_notifier`` turns one target into one
``Notifier`` and ``Notifications`` fans a decision out to the targets that asked for
its kind::

    notifications:
      - url: https://hooks.slack.com/services/T000/B000/XXXX
        events: [rolled_back, failed]
      - url_env: MODELREG_TEAM_WEBHOOK      # keep secret URLs out of the file
        queue_size: 100
        attempts: 5
        backoff_s: 1.0
        max_backoff_s: 30.0
        timeout_s: 5.0

A ``url_env`` that is not set is an ``OptionError`` when the notifier is built:
``config check`` warns, the daemon refuses to start.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from controller.errors import OptionError

if TYPE_CHECKING:
    import httpx

log = structlog.get_logger(__name__)

__all__ = [
    "DecisionEvent",
    "EventKind",
    "NotificationTarget",
    "Notifications",
    "Notifier",
    "NotifierStats",
    "NotifyEvent",
    "build_notifier",
    "slack_payload",
]


class EventKind(StrEnum):
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    AWAITING_APPROVAL = "awaiting_approval"
    FAILED = "failed"
    NOT_STARTED = "not_started"  # a staging version the watcher cannot roll out


_TITLES: Mapping[EventKind, tuple[str, str]] = {
    EventKind.PROMOTED: (":white_check_mark:", "promoted"),
    EventKind.ROLLED_BACK: (":rewind:", "rolled back"),
    EventKind.AWAITING_APPROVAL: (":hourglass:", "awaiting approval"),
    EventKind.FAILED: (":x:", "rollout failed"),
    EventKind.NOT_STARTED: (":no_entry_sign:", "not rolled out"),
}


@dataclass(frozen=True, slots=True)
class DecisionEvent:
    """One decision worth telling people about."""

    kind: EventKind
    model: str
    version: str  # the candidate the decision is about
    at: datetime
    reasons: tuple[str, ...] = ()
    rollout_id: str | None = None
    environment: str | None = None
    link: str | None = None  # e.g. the rollout's page or API URL
    details: Mapping[str, str] = field(default_factory=dict)  # extra "name: value" fields
    cause: str | None = None  # the decision's typed cause (controller.core.causes.Cause)


def _escape(text: str) -> str:
    """Slack mrkdwn needs &, < and > escaped; everything else is literal."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(event: DecisionEvent) -> dict[str, Any]:
    """The JSON body for ``event``: fallback ``text`` plus Block Kit ``blocks``."""
    emoji, verb = _TITLES[event.kind]
    where = f" ({event.environment})" if event.environment else ""
    title = f"{event.model} {event.version} {verb}{where}"
    text = f"{emoji} {_escape(title)}"
    if event.reasons:
        text += ": " + _escape("; ".join(event.reasons))
    fields = [
        {"type": "mrkdwn", "text": f"*Model*\n{_escape(event.model)}"},
        {"type": "mrkdwn", "text": f"*Version*\n{_escape(event.version)}"},
    ]
    if event.rollout_id:
        fields.append({"type": "mrkdwn", "text": f"*Rollout*\n{_escape(event.rollout_id)}"})
    if event.cause:
        fields.append({"type": "mrkdwn", "text": f"*Cause*\n{_escape(event.cause)}"})
    fields.extend(
        {"type": "mrkdwn", "text": f"*{_escape(k)}*\n{_escape(v)}"}
        for k, v in event.details.items()
    )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{title}"[:150]}},
        {"type": "section", "fields": fields[:10]},  # Slack allows at most 10 fields
    ]
    if event.reasons:
        bullets = "\n".join(f"• {_escape(r)}" for r in event.reasons)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": bullets[:3000]}})
    stamp = event.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    context = f"modelreg · {event.kind.value} · {stamp}"
    if event.link:
        context += f" · <{event.link}|details>"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {"text": text, "blocks": blocks}


@dataclass(frozen=True, slots=True)
class NotifierStats:
    sent: int
    failed: int  # gave up after the attempts, or a non-retriable answer
    dropped: int  # queue overflow, posted after close, or abandoned by close
    queued: int


@dataclass(frozen=True, slots=True)
class _Delivery:
    url: str
    payload: Mapping[str, Any]
    model: str
    kind: str


class Notifier:
    """Delivers ``DecisionEvent``s to webhooks from one background thread."""

    def __init__(
        self,
        *,
        webhooks: Sequence[str],
        client: httpx.Client | None = None,
        queue_size: int = 100,
        attempts: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        timeout_s: float = 5.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if queue_size < 1 or attempts < 1:
            raise ValueError("notifier: queue_size and attempts must be at least 1")
        self.webhooks = tuple(webhooks)
        self._owns_client = client is None
        import httpx  # noqa: PLC0415 -- loaded when a webhook is configured, not at every start

        self._client = client if client is not None else httpx.Client(timeout=timeout_s)
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        # The default sleep wakes early when close() gives up, so shutdown is prompt.
        self._abandon = threading.Event()
        self._sleep = sleep if sleep is not None else self._interruptible_sleep
        self._queue: collections.deque[_Delivery] = collections.deque()
        self._queue_size = queue_size
        self._cond = threading.Condition()
        self._closing = False
        self._busy = False
        self._sent = self._failed = self._dropped = 0
        self._thread = threading.Thread(target=self._run, name="modelreg-notifier", daemon=True)
        self._thread.start()

    def post(self, event: DecisionEvent) -> None:
        """Queue ``event`` for every webhook; returns at once, never raises."""
        payload = slack_payload(event)
        with self._cond:
            for url in self.webhooks:
                if self._closing:
                    self._dropped += 1
                    log.warning("notify.dropped_after_close", model=event.model, kind=event.kind)
                    continue
                if len(self._queue) >= self._queue_size:
                    oldest = self._queue.popleft()
                    self._dropped += 1
                    log.warning("notify.queue_full_dropped", model=oldest.model, kind=oldest.kind)
                self._queue.append(_Delivery(url, payload, event.model, event.kind.value))
            self._cond.notify()

    def stats(self) -> NotifierStats:
        with self._cond:
            return NotifierStats(self._sent, self._failed, self._dropped, len(self._queue))

    def close(self, timeout_s: float = 10.0) -> bool:
        """Stop intake, deliver what is queued for up to ``timeout_s``; True if all went out.

        Whatever is still queued at the deadline is abandoned and counted as dropped;
        a request in flight is given up at its own HTTP timeout.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            while (self._queue or self._busy) and time.monotonic() < deadline:
                self._cond.wait(timeout=max(0.0, deadline - time.monotonic()))
            drained = not self._queue and not self._busy
            if not drained:
                self._dropped += len(self._queue)
                self._queue.clear()
        self._abandon.set()
        self._thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._owns_client and not self._thread.is_alive():
            self._client.close()
        return drained

    # -- the worker --------------------------------------------------------------

    def _interruptible_sleep(self, seconds: float) -> None:
        self._abandon.wait(seconds)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return  # closing and nothing left
                delivery = self._queue.popleft()
                self._busy = True
            try:
                ok = self._deliver(delivery)
            except Exception as exc:  # a bug here must not kill the worker thread
                log.error("notify.worker_error", error=repr(exc))
                ok = False
            with self._cond:
                self._busy = False
                if ok:
                    self._sent += 1
                else:
                    self._failed += 1
                self._cond.notify_all()

    def _deliver(self, delivery: _Delivery) -> bool:
        import httpx  # noqa: PLC0415 -- loaded when a webhook is configured, not at every start

        error = "no attempt made"
        for attempt in range(1, self._attempts + 1):
            if attempt > 1:
                if self._abandon.is_set():
                    break
                self._sleep(min(self._max_backoff_s, self._backoff_s * 2.0 ** (attempt - 2)))
            try:
                response = self._client.post(
                    delivery.url, json=dict(delivery.payload), timeout=self._timeout_s
                )
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                return True
            error = f"HTTP {response.status_code}: {response.text[:200]}"
            if response.status_code < 500 and response.status_code not in (408, 429):
                break  # the receiver refuses this payload; retrying will not help
        log.warning(
            "notify.delivery_failed",
            webhook=_redact(delivery.url),
            model=delivery.model,
            kind=delivery.kind,
            error=error,
        )
        return False


class Notifications:
    """Several notifiers, each with the event kinds it wants; ``post`` never blocks."""

    def __init__(self, targets: Sequence[tuple[Notifier, frozenset[EventKind]]]) -> None:
        self.targets = tuple(targets)

    def post(self, event: DecisionEvent) -> None:
        for notifier, kinds in self.targets:
            if event.kind in kinds:
                notifier.post(event)

    def close(self, timeout_s: float = 10.0) -> bool:
        """Close every notifier, sharing ``timeout_s``; True when all drained."""
        deadline = time.monotonic() + timeout_s
        drained = True
        for notifier, _ in self.targets:
            drained = notifier.close(max(0.0, deadline - time.monotonic())) and drained
        return drained


def _redact(url: str) -> str:
    """Webhook URLs embed their secret in the path; log only scheme and host."""
    import httpx  # noqa: PLC0415 -- loaded when a webhook is configured, not at every start

    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}/…"


NotifyEvent = Literal["promoted", "rolled_back", "awaiting_approval", "failed", "not_started"]
_ALL_NOTIFY_EVENTS: list[NotifyEvent] = [
    "promoted", "rolled_back", "awaiting_approval", "failed", "not_started",
]  # fmt: skip


class NotificationTarget(BaseModel):
    """One webhook that receives decisions as Slack-compatible JSON.

    Give ``url`` or ``url_env`` (an environment variable holding the URL, to keep its
    secret out of the file). ``events``: which decisions it receives (default: all).
    Delivery is retried ``attempts`` times with backoff, off the decision's thread.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(default=None, repr=False, description="The webhook URL.")
    url_env: str | None = Field(
        default=None, min_length=1, description="An environment variable holding the URL."
    )
    events: list[NotifyEvent] = Field(
        default_factory=lambda: list(_ALL_NOTIFY_EVENTS),
        min_length=1,
        description="The decisions this target receives (default: all).",
    )
    timeout_s: float = Field(default=5.0, gt=0, description="Per HTTP request, in seconds.")
    attempts: int = Field(default=5, ge=1, description="Deliveries tried, the first included.")
    backoff_s: float = Field(
        default=1.0, ge=0, description="Seconds before the first retry; doubled after each."
    )
    max_backoff_s: float = Field(
        default=30.0, ge=0, description="The longest wait between retries, in seconds."
    )
    queue_size: int = Field(
        default=100, ge=1, description="Deliveries waiting at most; beyond, the oldest drops."
    )

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http(s) URL")
        return value

    @model_validator(mode="after")
    def _one_url(self) -> NotificationTarget:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("expected exactly one of url or url_env")
        return self

    def resolved_url(self) -> str:
        """The URL, read from ``url_env`` if so configured (``OptionError`` when unset
        or not an http(s) URL)."""
        if self.url is not None:
            return self.url
        name = str(self.url_env)
        url = os.environ.get(name, "")
        if not url:
            raise OptionError("url_env", f"{name} is not set")
        if not url.startswith(("http://", "https://")):
            raise OptionError("url_env", f"{name} does not hold an http(s) URL")
        return url

    def environment_problems(self) -> list[OptionError]:
        """An unset or unusable ``url_env``, as ``build_notifier`` would fail on it."""
        try:
            self.resolved_url()
        except OptionError as exc:
            return [exc]
        return []


def build_notifier(target: NotificationTarget) -> Notifier:
    """A ``Notifier`` for one validated target (``OptionError`` for an unset ``url_env``)."""
    return Notifier(
        webhooks=[target.resolved_url()],
        queue_size=target.queue_size,
        attempts=target.attempts,
        backoff_s=target.backoff_s,
        max_backoff_s=target.max_backoff_s,
        timeout_s=target.timeout_s,
    )
