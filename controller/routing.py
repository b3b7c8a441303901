"""The routing contract: what serving should do, and the routers that push it there.

A ``Route`` is the desired split for one model: versions with integer weights in
percent (summing to 100) and the artifact digest serving must load. Routers are
narrow: ``set`` pushes one model's route, ``read`` reads back what serving has
(so the daemon can reconcile on start and detect drift). Routers are registered
by the ``kind:`` string used in config; an unknown kind is a configuration error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class RouterError(Exception):
    """A router could not apply or read a route; the daemon retries and reports it."""


class UnknownRouterKind(ValueError):
    """A config names a router kind nobody registered."""


@dataclass(frozen=True, slots=True)
class Backend:
    version: str  # "v1.2.0"
    weight: int  # percent, 0..100
    digest: str | None = None  # SHA-256 of the artifact serving must load

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "weight": self.weight, "digest": self.digest}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Backend:
        return cls(str(data["version"]), int(data["weight"]), data.get("digest"))


@dataclass(frozen=True, slots=True)
class Route:
    """The desired split of one model's traffic.

    ``revision`` increases with every change the daemon makes, so a router (or
    serving code) can tell a newer route from an older one and ignore replays.
    """

    model: str
    backends: tuple[Backend, ...]
    revision: int = 0
    salt: str = field(default="")  # sticky-assignment salt (abtest.assign)

    def __post_init__(self) -> None:
        total = sum(b.weight for b in self.backends)
        if self.backends and total != 100:
            raise ValueError(f"route for {self.model!r}: weights sum to {total}, not 100")
        if any(not 0 <= b.weight <= 100 for b in self.backends):
            raise ValueError(f"route for {self.model!r}: weights must be within 0..100")
        versions = [b.version for b in self.backends]
        if len(set(versions)) != len(versions):
            raise ValueError(f"route for {self.model!r}: a version appears twice")

    def weight_of(self, version: str) -> int:
        return next((b.weight for b in self.backends if b.version == version), 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "revision": self.revision,
            "salt": self.salt,
            "backends": [b.to_dict() for b in self.backends],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Route:
        return cls(
            model=str(data["model"]),
            backends=tuple(Backend.from_dict(b) for b in data.get("backends", ())),
            revision=int(data.get("revision", 0)),
            salt=str(data.get("salt", "")),
        )


@runtime_checkable
class Router(Protocol):
    """Pushes desired routes to serving and reads back what serving has."""

    def set(self, route: Route) -> None:
        """Apply ``route``; raise ``RouterError`` if serving did not take it."""

    def read(self, model: str) -> Route | None:
        """What serving currently has for ``model`` (None: nothing yet)."""


RouterFactory = Callable[[Mapping[str, Any]], Router]
ROUTERS: dict[str, RouterFactory] = {}


def register_router(kind: str) -> Callable[[RouterFactory], RouterFactory]:
    """Decorator: make ``kind:`` in config build a router with this factory."""

    def wrap(factory: RouterFactory) -> RouterFactory:
        if kind in ROUTERS:
            raise ValueError(f"router kind {kind!r} is registered twice")
        ROUTERS[kind] = factory
        return factory

    return wrap


def build_router(kind: str, options: Mapping[str, Any]) -> Router:
    factory = ROUTERS.get(kind)
    if factory is None:
        known = ", ".join(sorted(ROUTERS)) or "none"
        raise UnknownRouterKind(f"unknown router kind {kind!r}; known kinds: {known}")
    return factory(options)
