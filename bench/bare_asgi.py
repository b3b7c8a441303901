"""The same-run baseline of the HTTP benchmarks: the smallest ASGI app uvicorn can serve.

It answers every request with a resolve-shaped JSON document (or a 304 when the
request has an ``If-None-Match``), nothing else: what is left is uvicorn, uvloop,
httptools and the socket. ``serve_bench.py`` starts it exactly as the daemon starts
its own (same loop, parser, access log off) and compares.
"""

from __future__ import annotations

import json
from typing import Any

BODY = json.dumps(
    {"name": "fraud", "version": "1.0.0", "stage": "production",
     "digest": "0" * 64, "artifact": "model.bin"},
    separators=(",", ":"),
).encode()  # fmt: skip
HEADERS = [(b"content-length", str(len(BODY)).encode()), (b"content-type", b"application/json")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if any(k == b"if-none-match" for k, _ in scope["headers"]):
        await send({"type": "http.response.start", "status": 304, "headers": [(b"etag", b'"e"')]})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
