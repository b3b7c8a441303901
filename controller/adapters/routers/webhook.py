"""The ``webhook`` router: POST each desired route, signed, to a receiver.

Config (``kind: webhook``, validated by ``WebhookOptions``)::

    url: https://serving.internal/modelreg/routes   # required
    secret_file: /etc/modelreg/webhook.secret       # or secret_env: NAME, or secret: "..."
    read_url: https://serving.internal/modelreg/routes   # optional, see read()
    attempts: 4          # per set(), first try included
    backoff_s: 0.5       # doubled after each failed attempt ...
    max_backoff_s: 8.0   # ... up to this
    timeout_s: 5.0       # per HTTP request

The secret is read when the router is built: a ``secret_env`` that is not set or a
``secret_file`` that cannot be read is an ``OptionError`` (``config check`` warns,
the daemon refuses to start).

Request: ``POST url`` with the route as JSON (``Route.to_dict()``, keys sorted)
and ``X-Modelreg-Signature: t=<unix seconds>,v1=<hex>``, where ``hex`` is
HMAC-SHA256 with the shared secret over ``"<t>." + body``. Receivers check it
with ``verify_signature`` (or the same four lines in their language) and should
ignore a route whose ``revision`` is not newer than the one they hold, since
re-sends and retries may repeat it.

Only a 2xx answer confirms. Transport errors, 5xx, 408 and 429 are retried with
exponential backoff (bounded attempts; the sleep is injected); any other answer
fails at once. A route that was not confirmed stays *pending*: ``pending()``
lists those models and ``resend_pending()`` pushes them again at once. The
daemon re-sends through ``set()`` on every tick and watcher pass; between failed
pushes of the same pending route ``set()`` backs off (``backoff_s`` doubled per
failed push, up to ``max_backoff_s``) and raises the last error without
touching the network, so a receiver that is down is not hammered and a pass is
not held up by it. A different route (a rollback, say) is pushed at once.
``status()`` reports pending models and their last errors for ``/readyz``.

``read(model)`` returns the last route the receiver confirmed, as remembered by
this process. With ``read_url`` set it instead asks the receiver: ``GET
read_url?model=<name>`` (signed over an empty body) answering 200 with the
route JSON, or 404 when it has none; that is what lets the daemon detect drift
after a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, Field, model_validator

from controller.adapters.routing import RouterError, RouterOptions, register_router
from controller.errors import OptionError
from serving.route import Route

if TYPE_CHECKING:
    import httpx

__all__ = [
    "SIGNATURE_HEADER",
    "WebhookOptions",
    "WebhookRouter",
    "WebhookStatus",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Modelreg-Signature"
_RETRIABLE_STATUS = frozenset({408, 429})


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def sign(secret: str | bytes, body: bytes, *, timestamp: int) -> str:
    """The ``X-Modelreg-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str | bytes,
    header: str | None,
    body: bytes,
    *,
    now: float,
    tolerance_s: float = 300.0,
) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of ``now``.

    For receivers. Several ``v1=`` entries are accepted (any one may match), so a
    sender can sign with an old and a new secret during rotation. The tolerance
    bounds replays of a captured request; compare ``revision`` as well.
    """
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp=timestamp).rsplit("v1=", 1)[1]
    matched = False
    for candidate in candidates:  # compare all: timing says nothing about which
        matched |= hmac.compare_digest(candidate.encode(), expected.encode())
    return matched


def _backoff(attempt: int, base_s: float, max_s: float) -> float:
    """Delay before retry number ``attempt`` (1-based): base, 2*base, 4*base ... capped."""
    return min(max_s, base_s * 2.0 ** (attempt - 1))


@dataclass(frozen=True, slots=True)
class WebhookStatus:
    """What ``/readyz`` shows for this router: unconfirmed models and why."""

    url: str
    pending: tuple[str, ...]
    errors: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.pending

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "webhook",
            "url": self.url,
            "ok": self.ok,
            "pending": list(self.pending),
            "errors": dict(self.errors),
        }


class WebhookRouter:
    """Pushes routes to an HTTP receiver; keeps unconfirmed ones pending until taken."""

    def __init__(
        self,
        *,
        url: str,
        secret: str | bytes,
        client: httpx.Client | None = None,
        read_url: str | None = None,
        attempts: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        timeout_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"webhook router: attempts must be at least 1, not {attempts}")
        if not _key(secret):
            raise ValueError("webhook router: the secret must not be empty")
        self.url = url
        self.read_url = read_url
        self._secret = _key(secret)
        self._owns_client = client is None
        import httpx  # noqa: PLC0415 -- loaded when a webhook is configured, not at every start

        self._client = client if client is not None else httpx.Client(timeout=timeout_s)
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._desired: dict[str, Route] = {}  # not yet confirmed
        self._confirmed: dict[str, Route] = {}
        self._errors: dict[str, str] = {}
        self._monotonic = monotonic
        self._failed_pushes: dict[str, int] = {}  # per model, since its last confirmation
        self._retry_at: dict[str, float] = {}  # per model: no push of the same route before

    # -- Router protocol ---------------------------------------------------------

    def set(self, route: Route) -> None:
        """Push ``route``; it stays pending (and ``RouterError`` is raised) until a 2xx.

        The same pending route again before its retry time raises the last error
        without a request (see the module docstring).
        """
        with self._lock:
            same = self._desired.get(route.model) == route
            self._desired[route.model] = route
            wait = self._retry_at.get(route.model, 0.0) - self._monotonic()
            error = self._errors.get(route.model)
        if same and wait > 0 and error is not None:
            raise RouterError(f"{error}; next attempt in {wait:.1f}s")
        self._push(route)

    def read(self, model: str) -> Route | None:
        """The receiver's route for ``model``: asked via ``read_url``, else remembered."""
        import httpx  # noqa: PLC0415 -- loaded when a webhook is configured, not at every start

        if self.read_url is None:
            with self._lock:
                return self._confirmed.get(model)
        try:
            response = self._client.get(
                self.read_url,
                params={"model": model},
                headers={SIGNATURE_HEADER: sign(self._secret, b"", timestamp=int(self._clock()))},
                timeout=self._timeout_s,
            )
        except httpx.HTTPError as exc:
            raise RouterError(f"webhook GET {self.read_url} for {model!r} failed: {exc}") from exc
        if response.status_code == 404:
            return None
        if not response.is_success:
            raise RouterError(
                f"webhook GET {self.read_url} for {model!r} answered {response.status_code}"
            )
        try:
            route = Route.from_dict(response.json())
        except (ValueError, KeyError, TypeError) as exc:
            raise RouterError(
                f"webhook GET {self.read_url} for {model!r}: not a route: {exc}"
            ) from exc
        if route.model != model:
            raise RouterError(
                f"webhook GET {self.read_url} for {model!r} returned model {route.model!r}"
            )
        return route

    # -- pending routes and health -----------------------------------------------

    def pending(self) -> list[str]:
        """Models whose latest desired route the receiver has not confirmed."""
        with self._lock:
            return sorted(self._desired)

    def resend_pending(self) -> list[str]:
        """Push every pending route once more (with retries); return those still pending.

        Never raises for a receiver failure: the errors are kept for ``status()``.
        """
        with self._lock:
            routes = list(self._desired.values())
        for route in routes:
            try:
                self._push(route)
            except RouterError:
                continue  # recorded in _errors by _push; the route stays pending
        return self.pending()

    def status(self) -> WebhookStatus:
        with self._lock:
            return WebhookStatus(
                url=self.url,
                pending=tuple(sorted(self._desired)),
                errors={m: e for m, e in self._errors.items() if m in self._desired},
            )

    def close(self) -> None:
        """Close the HTTP client if this router created it."""
        if self._owns_client:
            self._client.close()

    # -- internals ---------------------------------------------------------------

    def _push(self, route: Route) -> None:
        body = json.dumps(route.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        last = "no attempt made"
        for attempt in range(1, self._attempts + 1):
            if attempt > 1:
                self._sleep(_backoff(attempt - 1, self._backoff_s, self._max_backoff_s))
            retriable, last = self._attempt(route, body)
            if not last:
                self._confirm(route)
                return
            if not retriable:
                break
        message = (
            f"webhook {self.url} did not confirm route for {route.model!r} "
            f"(revision {route.revision}) after {attempt} attempt(s): {last}"
        )
        with self._lock:
            if self._desired.get(route.model) == route:
                self._errors[route.model] = message
                failed = self._failed_pushes.get(route.model, 0) + 1
                self._failed_pushes[route.model] = failed
                delay = min(self._max_backoff_s, self._backoff_s * 2.0**failed)
                self._retry_at[route.model] = self._monotonic() + delay
        raise RouterError(message)

    def _attempt(self, route: Route, body: bytes) -> tuple[bool, str]:
        """One POST: ``(retriable, error)``; an empty error means confirmed."""
        import httpx  # noqa: PLC0415 -- loaded when a webhook is configured, not at every start

        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, body, timestamp=int(self._clock())),
            "X-Modelreg-Model": route.model,
            "X-Modelreg-Revision": str(route.revision),
        }
        try:
            response = self._client.post(
                self.url, content=body, headers=headers, timeout=self._timeout_s
            )
        except httpx.TransportError as exc:
            return True, f"{type(exc).__name__}: {exc}"
        if response.is_success:
            return False, ""
        detail = response.text[:200].strip()
        error = f"HTTP {response.status_code}" + (f": {detail}" if detail else "")
        retriable = response.status_code >= 500 or response.status_code in _RETRIABLE_STATUS
        return retriable, error

    def _confirm(self, route: Route) -> None:
        with self._lock:
            self._confirmed[route.model] = route
            # A newer route set meanwhile stays pending; only this one is confirmed.
            if self._desired.get(route.model) == route:
                del self._desired[route.model]
                self._errors.pop(route.model, None)
                self._failed_pushes.pop(route.model, None)
                self._retry_at.pop(route.model, None)


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
_SECRETS = ("secret", "secret_file", "secret_env")


class WebhookOptions(RouterOptions):
    """Options of ``kind: webhook``: where routes are POSTed, signed with a shared secret.

    Exactly one of ``secret``, ``secret_file`` and ``secret_env`` gives the secret.
    """

    url: HttpUrl = Field(description="The receiver: each route is POSTed here (required).")
    read_url: HttpUrl | None = Field(
        default=None,
        description="Where read() asks the receiver for a model's route (GET ?model=NAME); "
        "without it, read() answers what this process saw confirmed.",
    )
    secret: str | None = Field(
        default=None, min_length=1, repr=False, description="The HMAC secret itself."
    )
    secret_file: str | None = Field(
        default=None,
        min_length=1,
        description="A file holding the secret (e.g. a systemd credential); read at start.",
    )
    secret_env: str | None = Field(
        default=None,
        min_length=1,
        description="An environment variable holding the secret; read at start.",
    )
    attempts: int = Field(
        default=4, ge=1, le=100, description="POSTs per set(), the first one included."
    )
    backoff_s: float = Field(
        default=0.5,
        ge=0,
        le=3600,
        description="Seconds before the first retry; doubled after each.",
    )
    max_backoff_s: float = Field(
        default=8.0, ge=0, le=3600, description="The longest wait between retries, in seconds."
    )
    timeout_s: float = Field(default=5.0, gt=0, le=600, description="Per HTTP request, seconds.")

    @model_validator(mode="after")
    def _one_secret(self) -> WebhookOptions:
        given = [key for key in _SECRETS if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError(
                "exactly one of secret, secret_file, secret_env is required"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    def read_secret(self) -> str:
        """The secret, from the file or the environment if so configured.

        ``OptionError`` naming the key when the variable is unset or the file cannot
        be read or is empty.
        """
        if self.secret is not None:
            return self.secret
        if self.secret_file is not None:
            path = Path(self.secret_file)
            try:
                value = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise OptionError("secret_file", f"cannot read {path}: {exc.strerror}") from None
            if not value:
                raise OptionError("secret_file", f"{path} is empty")
            return value
        name = str(self.secret_env)
        value = os.environ.get(name, "")
        if not value:
            raise OptionError("secret_env", f"{name} is not set")
        return value

    def environment_problems(self) -> list[OptionError]:
        try:
            self.read_secret()
        except OptionError as exc:
            return [exc]
        return []


@register_router("webhook", options=WebhookOptions)
def build_webhook_router(options: WebhookOptions) -> WebhookRouter:
    """The factory for ``kind: webhook``; reads the secret (``OptionError`` if it cannot)."""
    return WebhookRouter(
        url=options.url,
        secret=options.read_secret(),
        read_url=options.read_url,
        attempts=options.attempts,
        backoff_s=options.backoff_s,
        max_backoff_s=options.max_backoff_s,
        timeout_s=options.timeout_s,
    )
