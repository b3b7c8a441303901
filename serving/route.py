"""What serving is told: a model's route (versions, weights, digests) and the routing file.

The contract between the daemon and serving code. The daemon's routers
(``controller.adapters.routers``) push ``Route`` values; serving code
(``serving.route_table.RouteTable``) reads them back, from the file router's JSON
table (``read_table``) or the daemon's ``GET /v1/routes/{model}``. It lives here, not
in the daemon's package, so that serving processes import neither the daemon nor
its dependencies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Backend", "Route", "read_table"]


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


def read_table(path: Path) -> dict[str, Route]:
    """The routes in the file at ``path`` (empty when it does not exist yet)."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    data = json.loads(raw)
    return {name: Route.from_dict(route) for name, route in data.get("models", {}).items()}
