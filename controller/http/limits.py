"""Request body size limits, enforced before a body is read into memory.

A pure-ASGI middleware, so that it sees the body as the server streams it (a
FastAPI dependency would only run after the whole body was parsed). A request
whose ``Content-Length`` is over the limit is answered 413 at once, unread; a
body without one (chunked) is counted as it arrives and cut off at the first
chunk past the limit. Either way the answer is JSON naming the limit, the path
and the setting that raises it.

Limits are per path prefix (the longest matching prefix wins), so batch ingest
can take more than the small control bodies of every other route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from controller.http.problems import PROBLEM_JSON, problem_body

__all__ = ["BodyLimit"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """Refuse request bodies over ``default`` bytes (or ``per_prefix[prefix]``) with 413."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        default: int,
        per_prefix: Mapping[str, int] | None = None,
        setting: str = "server.max_body_bytes",
        prefix_settings: Mapping[str, str] | None = None,
    ) -> None:
        if default <= 0 or any(v <= 0 for v in (per_prefix or {}).values()):
            raise ValueError("body limits must be positive byte counts")
        self.app = app
        self.default = default
        # Longest prefix first, so /v1/ingest/ beats /v1/.
        self.per_prefix = sorted((per_prefix or {}).items(), key=lambda kv: -len(kv[0]))
        self.setting = setting
        self.prefix_settings = dict(prefix_settings or {})

    def limit_for(self, path: str) -> tuple[int, str]:
        """The byte limit for ``path`` and the config key that sets it."""
        for prefix, limit in self.per_prefix:
            if path.startswith(prefix):
                return limit, self.prefix_settings.get(prefix, self.setting)
        return self.default, self.setting

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        limit, setting = self.limit_for(path)
        declared = _content_length(scope)
        if declared == "invalid":
            await _answer(send, 400, "invalid Content-Length header: expected a byte count")
            return
        if isinstance(declared, int) and declared > limit:
            await _answer(send, 413, _too_large(path, limit, setting, declared))
            return
        received = 0
        exceeded = False
        started = False

        async def counted() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Tell the app the client went away: it stops reading, and its
                    # answer to that is replaced by the 413 below.
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return
            started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _answer(send, 413, _too_large(path, limit, setting, None))


def _content_length(scope: Scope) -> int | str | None:
    """The declared length; ``"invalid"`` when unparsable; None when absent."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            text = bytes(value).decode("latin-1").strip()
            return int(text) if text.isdigit() else "invalid"
    return None


def _too_large(path: str, limit: int, setting: str, declared: int | None) -> str:
    size = f"{declared} bytes" if declared is not None else f"more than {limit} bytes"
    return (
        f"request body too large for {path}: {size}, the limit is {limit} bytes (config {setting})"
    )


async def _answer(send: Send, status: int, detail: str) -> None:
    body = problem_body(status, detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
