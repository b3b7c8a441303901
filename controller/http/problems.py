"""Every error the API answers has one shape: RFC 9457 problem details.

``application/problem+json`` with ``type`` (``about:blank``), ``title`` (the status's
phrase), ``status`` and ``detail``: one line saying what was wrong and what to do. A
request that fails validation also carries ``errors``, FastAPI's list of what failed
where (``loc``, ``msg``, ``type``), and its ``detail`` joins them. So a client reads
``detail`` for any error, whichever layer refused the request: the role check, the
body limit, validation, a handler or the framework's own 404 and 405.

``documented(...)`` gives a route's ``responses=`` entries for the error statuses it
can answer, so the OpenAPI document lists each with this schema. A 405 names, in
``Allow``, every method any route of that path takes (Starlette names only the first
route's).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

__all__ = [
    "PROBLEM_JSON",
    "Problem",
    "documented",
    "install",
    "problem",
    "problem_body",
]

PROBLEM_JSON = "application/problem+json"


class Problem(BaseModel):
    """An error answer (RFC 9457); ``errors`` only on validation failures (422). An
    action refused by another member (several daemons) adds the extension members
    ``member`` and ``request``."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


def problem_body(
    status: int,
    detail: str,
    errors: Sequence[Any] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> bytes:
    """The JSON bytes of a problem (for the pure-ASGI middlewares)."""
    body: dict[str, Any] = dict(extensions or {})
    body.update(type="about:blank", title=_title(status), status=status, detail=detail)
    if errors is not None:
        body["errors"] = list(errors)
    return json.dumps(body, default=str).encode()


def problem(
    status: int,
    detail: str,
    *,
    errors: Sequence[Any] | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> Response:
    """A problem-details response; ``extensions``: extra members (RFC 9457 3.2)."""
    body = problem_body(status, detail, errors, extensions)
    return Response(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that can answer ``statuses``, each a ``Problem``."""
    return {
        status: {
            "description": _title(status),
            "model": Problem,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def install(app: FastAPI) -> None:
    """Answer the framework's errors as problems: HTTP errors (404, 405 with the whole
    ``Allow``), validation failures (422 with ``errors``)."""

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
            headers["Allow"] = ", ".join(_allowed(app, request))
        return problem(exc.status_code, str(exc.detail), headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {
                "loc": list(e.get("loc", ())),
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()
        ]
        detail = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in errors
        )
        return problem(422, detail or "invalid request", errors=errors)


def _allowed(app: FastAPI, request: Request) -> list[str]:
    """Every method the routes of the request's path take."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
