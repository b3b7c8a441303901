"""The ``haproxy`` router: server weights changed through HAProxy's runtime API, no reload.

Config (``kind: haproxy``, validated by ``HaproxyOptions``)::

    socket: /run/haproxy/admin.sock   # the runtime API: a UNIX socket path, or host:port
                                      #   (haproxy.cfg: stats socket ... level admin)
    backends: {fraud: fraud_backend}  # model -> HAProxy backend (default: the model's name)
    servers:                          # version -> server name in the model's backend, for
      v1.0.0: v1                      #   every model; or model -> {version: server}
      v1.1.0: v2
    timeout_s: 5                      # per runtime API command

HAProxy holds one backend per model with one server per version, balanced by
weight (``balance roundrobin``: smooth weighted round-robin, exact proportions)::

    backend fraud_backend
        balance roundrobin
        server v1 127.0.0.1:9001 weight 100
        server v2 127.0.0.1:9002 weight 0

``set(route)`` refuses a version with no server (nothing is touched), then sends
``set server <backend>/<server> weight <percent>`` for every server of the backend
(0 for versions the route leaves out), the weights that grow first so the backend
never has all servers at 0. Each command is one connection; an answer other than
the empty success, a refused or timed-out connection raise ``RouterError`` with
HAProxy's words, and the actuator retries as it does for nginx.

``read(model)`` asks ``get weight`` of each server. HAProxy keeps weights, not
revisions, salts or digests: when the weights are the ones this process last pushed,
that route is returned whole; otherwise (HAProxy restarted with its config's
weights, someone changed them, or this process is new) the route HAProxy actually
serves is returned with revision 0, so the reconciler pushes the database's route.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from controller.adapters.routing import RouterError, RouterOptions, register_router
from serving.route import Backend, Route

__all__ = ["HaproxyOptions", "HaproxyRouter", "build_haproxy_router"]

_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")  # HAProxy's proxy and server name characters
_WEIGHT = re.compile(r"^(\d+) \(initial \d+\)\s*$")


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(f"{what} must be an HAProxy name ([A-Za-z0-9_.:-]), got {value!r}")
    return value


def _servers_option(raw: Any) -> Any:
    """``servers``: version -> server, or model -> {version: server}; names checked."""
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError("expected version -> server name (or model -> {version: server})")
    nested = [isinstance(v, Mapping) for v in raw.values()]
    if any(nested) and not all(nested):
        raise ValueError("mix of version -> server and model -> {version: server}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, Mapping):
            out[str(key)] = {str(v): _name(s, f"servers.{key}.{v}") for v, s in value.items()}
        else:
            out[str(key)] = _name(value, f"servers.{key}")
    return out


def _socket_option(raw: Any) -> Any:
    """A UNIX socket path (holds a "/") or host:port; anything else named now, not at
    the first push."""
    if isinstance(raw, str) and raw and "/" not in raw:
        host, _, port = raw.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected a UNIX socket path (with a /) or host:port, got {raw!r}")
    return raw


def _backends_option(raw: Any) -> Any:
    if not isinstance(raw, Mapping):
        raise ValueError("expected model -> backend name")
    return {str(k): _name(v, f"backends.{k}") for k, v in raw.items()}


class HaproxyOptions(RouterOptions):
    """Options of ``kind: haproxy``: where the runtime API listens and which server of
    which backend serves each version."""

    socket: Annotated[str, BeforeValidator(_socket_option)] = Field(
        min_length=1,
        description="HAProxy's runtime API: a UNIX socket path, or host:port (required; "
        "`stats socket ... level admin` in haproxy.cfg).",
    )
    servers: Annotated[dict[str, str | dict[str, str]], BeforeValidator(_servers_option)] = Field(
        description="Version -> server name in the model's backend, for every model; or "
        "model -> {version: server} (required).",
    )
    backends: Annotated[dict[str, str], BeforeValidator(_backends_option)] = Field(
        default_factory=dict, description="Model -> HAProxy backend (default: the model's name)."
    )
    timeout_s: float = Field(
        default=5.0, gt=0, le=600, description="Seconds each runtime API command may take."
    )


class HaproxyRouter:
    """Routes through HAProxy's runtime API (see the module docstring)."""

    def __init__(
        self,
        *,
        socket_address: str,
        servers: Mapping[str, str | Mapping[str, str]],
        backends: Mapping[str, str] | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self.socket_address = socket_address
        self._servers = dict(servers)
        self._backends = dict(backends or {})
        self.timeout_s = timeout_s
        self._pushed: dict[str, Route] = {}  # what this process last set, per model
        self._lock = threading.Lock()

    def backend_of(self, model: str) -> str:
        return self._backends.get(model, model)

    def servers_of(self, model: str) -> dict[str, str]:
        """version -> server name for ``model``."""
        nested = self._servers.get(model)
        if isinstance(nested, Mapping):
            return dict(nested)
        return {v: s for v, s in self._servers.items() if isinstance(s, str)}

    # -- the runtime API -------------------------------------------------------------

    def _command(self, command: str) -> str:
        """One command on its own connection (HAProxy answers and closes)."""
        address = self.socket_address
        try:
            if "/" in address:
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                target: Any = address
            else:
                host, _, port = address.rpartition(":")
                conn = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
                target = (host.strip("[]"), int(port))
            with contextlib.closing(conn):
                conn.settimeout(self.timeout_s)
                conn.connect(target)
                conn.sendall(command.encode() + b"\n")
                chunks = []
                while chunk := conn.recv(65536):
                    chunks.append(chunk)
        except (OSError, ValueError) as exc:
            raise RouterError(
                f"haproxy runtime API at {address}: {command!r} failed: {exc}"
            ) from None
        return b"".join(chunks).decode(errors="replace")

    def _weight(self, backend: str, server: str) -> int:
        answer = self._command(f"get weight {backend}/{server}").strip()
        found = _WEIGHT.match(answer)
        if found is None:
            raise RouterError(f"haproxy: get weight {backend}/{server}: {answer or 'no answer'}")
        return int(found.group(1))

    # -- Router ---------------------------------------------------------------------

    def set(self, route: Route) -> None:
        servers = self.servers_of(route.model)
        missing = [b.version for b in route.backends if b.version not in servers]
        if missing:
            raise RouterError(
                f"haproxy: no server configured for {route.model} {', '.join(missing)} "
                f"(servers: {', '.join(sorted(servers)) or 'none'})"
            )
        backend = self.backend_of(route.model)
        wanted = {server: route.weight_of(version) for version, server in servers.items()}
        with self._lock:
            current = {s: self._weight(backend, s) for s in wanted}
            # Growing weights first: the backend never passes through all zeros.
            order = sorted(wanted, key=lambda s: wanted[s] <= current[s])
            for server in order:
                if wanted[server] == current[server]:
                    continue
                answer = self._command(
                    f"set server {backend}/{server} weight {wanted[server]}"
                ).strip()
                if answer:
                    raise RouterError(
                        f"haproxy refused set server {backend}/{server} weight "
                        f"{wanted[server]}: {answer}"
                    )
            self._pushed[route.model] = route

    def read(self, model: str) -> Route | None:
        servers = self.servers_of(model)
        if not servers:
            return None
        backend = self.backend_of(model)
        with self._lock:
            weights = {v: self._weight(backend, s) for v, s in servers.items()}
            pushed = self._pushed.get(model)
        if pushed is not None and all(weights[v] == pushed.weight_of(v) for v in weights):
            return pushed
        serving = {v: w for v, w in weights.items() if w > 0}
        total = sum(serving.values())
        if not total:
            return None
        if total != 100:  # HAProxy's own weights (its config's): as percentages
            shares = {v: round(100 * w / total) for v, w in serving.items()}
            first = max(shares, key=lambda v: shares[v])
            shares[first] += 100 - sum(shares.values())
            serving = shares
        backends = tuple(Backend(v, w) for v, w in sorted(serving.items()))
        return Route(model=model, backends=backends, revision=0)


@register_router("haproxy", options=HaproxyOptions)
def build_haproxy_router(options: HaproxyOptions) -> HaproxyRouter:
    """The factory for ``kind: haproxy``."""
    return HaproxyRouter(
        socket_address=options.socket,
        servers=options.servers,
        backends=options.backends,
        timeout_s=options.timeout_s,
    )
