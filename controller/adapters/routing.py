"""The routers' contract: the protocol every router kind implements, and their registry.

A ``Route`` (``serving.route``) is the desired split for one model: versions with
integer weights in percent (summing to 100) and the artifact digest serving must load. Routers are
narrow: ``set`` pushes one model's route, ``read`` reads back what serving has
(so the daemon can reconcile on start and detect drift). Routers are registered
by the ``kind:`` string used in config; an unknown kind is a configuration error.

Each kind registers a pydantic options model with its factory
(``@register_router("nginx", options=NginxOptions)``), and the factory receives the
validated model, never the raw mapping: the config file (``controller.config``, which
validates every router's ``options`` with its kind's model), ``build_router`` and the
JSON Schema all go through that one model, so ``config check`` refuses exactly what
the daemon would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict

from controller.errors import OptionError
from monitors.source import validate_options
from serving.route import Route

__all__ = [
    "ROUTERS",
    "Router",
    "RouterError",
    "RouterKind",
    "RouterOptions",
    "UnknownRouterKind",
    "build_router",
    "register_router",
    "router_kind",
]


class RouterError(Exception):
    """A router could not apply or read a route; the daemon retries and reports it."""


class UnknownRouterKind(ValueError):
    """A config names a router kind nobody registered."""


@runtime_checkable
class Router(Protocol):
    """Pushes desired routes to serving and reads back what serving has."""

    def set(self, route: Route) -> None:
        """Apply ``route``; raise ``RouterError`` if serving did not take it."""

    def read(self, model: str) -> Route | None:
        """What serving currently has for ``model`` (None: nothing yet)."""


class RouterOptions(BaseModel):
    """Base of every router kind's options model.

    Unknown keys are refused (a typo must not silently fall back to a default) and
    types are strict (``"30"`` for a timeout or ``1`` for a flag is a mistake to name,
    not to coerce); infinities and NaN are refused; values are frozen.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    def environment_problems(self) -> list[OptionError]:
        """What this process's environment lacks for these options (an unset variable,
        an unreadable file); the factory fails with the first. None by default."""
        return []


OptionsT = TypeVar("OptionsT", bound=RouterOptions)
RouterT = TypeVar("RouterT", bound=Router)


@dataclass(frozen=True, slots=True)
class RouterKind:
    """One registered ``kind:``: its options model and the factory that builds from it."""

    options: type[RouterOptions]
    factory: Callable[[Any], Router]


ROUTERS: dict[str, RouterKind] = {}


def register_router(
    kind: str, *, options: type[OptionsT]
) -> Callable[[Callable[[OptionsT], RouterT]], Callable[[OptionsT], RouterT]]:
    """Decorator: make ``kind:`` in config build a router with this factory, from
    options validated by ``options``."""

    def wrap(factory: Callable[[OptionsT], RouterT]) -> Callable[[OptionsT], RouterT]:
        if kind in ROUTERS:
            raise ValueError(f"router kind {kind!r} is registered twice")
        ROUTERS[kind] = RouterKind(options=options, factory=factory)
        return factory

    return wrap


def router_kind(kind: str) -> RouterKind:
    """The registered ``kind``; ``UnknownRouterKind`` lists the known ones."""
    found = ROUTERS.get(kind)
    if found is None:
        known = ", ".join(sorted(ROUTERS)) or "none"
        raise UnknownRouterKind(f"unknown router kind {kind!r}; known kinds: {known}")
    return found


def build_router(kind: str, options: Mapping[str, Any] | RouterOptions | None = None) -> Router:
    """A router of ``kind``. A mapping is validated with the kind's options model first
    (a ``ConfigError``, a ``ValueError``, naming the option); a model must be that
    kind's own."""
    registered = router_kind(kind)
    if isinstance(options, RouterOptions):
        if not isinstance(options, registered.options):
            raise TypeError(
                f"{kind} router: expected {registered.options.__name__}, "
                f"got {type(options).__name__}"
            )
        return registered.factory(options)
    validated = validate_options(registered.options, options or {}, what=f"{kind} router")
    return registered.factory(validated)
