"""Counting the SQL statements tests send: a batched path must not grow with its rows."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


class Statements:
    """SQL statements sent to any engine while counting (``with Statements() as s``)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.executemany = 0

    def __call__(
        self, _conn: Any, _cursor: Any, statement: str, _p: Any, _c: Any, many: bool
    ) -> None:
        self.seen.append(statement)
        self.executemany += many

    def __enter__(self) -> Statements:
        sa.event.listen(sa.Engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *_: object) -> None:
        sa.event.remove(sa.Engine, "before_cursor_execute", self)
