"""The ``nginx`` router: render a config fragment per model, test it, reload nginx.

Config (``kind: nginx``, validated by ``NginxOptions``)::

    include_dir: /etc/nginx/modelreg.d     # required; fragments live here
    main_config: /etc/nginx/nginx.conf     # required; for `nginx -t -c` and reload
    nginx: /usr/sbin/nginx                 # the binary (default)
    pid_file: /run/nginx.pid               # optional: reload by SIGHUP to this pid
                                           #   (default: `nginx -s reload -c main_config`)
    mode: split_clients                    # or: weighted
    key: $request_id                       # split_clients hash key, e.g. $cookie_uid
    upstreams:                             # version -> address (or list of addresses),
      v1.0.0: 127.0.0.1:9001               #   for every model; or model -> {version: address}
      v1.1.0: 127.0.0.1:9002
    timeout_s: 30                          # per nginx command

The main config includes the fragments inside ``http {}`` and proxies through the
variable each fragment defines, ``$modelreg_<model>_upstream`` (see
``upstream_variable``)::

    http {
        include /etc/nginx/modelreg.d/modelreg-*.conf;
        server {
            listen 8080;
            location /fraud/ { proxy_pass http://$modelreg_fraud_upstream; }
        }
    }

Modes. ``split_clients`` hashes ``key`` (plus the route's salt) with
MurmurHash2 into percent buckets: with ``$request_id`` every request is drawn
afresh, with a cookie or user id a client sticks to one version. ``weighted``
puts all versions into one upstream with ``weight=`` (smooth weighted
round-robin: exact proportions, no stickiness).

Applying a route (``set``), under a lock shared by threads and processes:

1. refuse versions missing from ``upstreams`` (nothing is touched);
2. write the fragment to a temp file in ``include_dir``, fsync, rename over the
   model's fragment, fsync the directory;
3. ``nginx -t -c main_config``; on failure put the previous fragment back (or
   remove the new one) and raise ``RouterError`` carrying nginx's message;
4. reload; on failure likewise restore the previous fragment and raise.

Between 2 and 3 the file on disk is untested, but nothing reloads nginx in that
window except this router (the lock serialises it), so serving never sees an
untested fragment; and the test covers the whole config, includes and all,
exactly as the reload will read it. A reload is asynchronous: nginx's master
re-reads the config after the signal and, should that fail, keeps its old
configuration and logs why.

``read(model)`` parses the fragment back: weights come from the
``split_clients`` percentages (or the ``weight=`` values), versions from the
upstream names, revision, salt and digests from the ``# modelreg-route:`` header.
A fragment whose directives disagree with its header was edited by hand and
raises ``RouterError``.

Until this process has reloaded nginx once, ``read`` answers None for every
model: a fragment on disk may be one a daemon wrote and then died before
reloading, so nginx may not serve it. The first ``set`` after a start therefore
tests and reloads even when the fragment is already on disk, and that one reload
loads every model's fragment.

Permissions: the router writes into ``include_dir`` and signals nginx's master,
usually root. Under the hardened unit (``DynamicUser=yes``, no capabilities)
that needs a drop-in: ``ReadWritePaths=`` for the include directory, and an
nginx master the service user may signal (``pid_file``) or the capability to
do so; ``sudo`` cannot help under ``NoNewPrivileges=yes``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from controller.adapters.routing import RouterError, RouterOptions, register_router
from serving.route import Backend, Route

__all__ = [
    "NginxOptions",
    "NginxRouter",
    "build_nginx_router",
    "fragment_path",
    "upstream_variable",
]

Mode = Literal["split_clients", "weighted"]
Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]

_HEADER = "# modelreg-route: "
_VARIABLE_RE = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")
_SALT_RE = re.compile(r"[A-Za-z0-9_.:-]*")
_ADDRESS_RE = re.compile(r"[^\s;{}'\"#$]+")


def _safe(name: str) -> str:
    """``name`` as an nginx identifier: other characters become ``_``.

    Two models differing only there (``a-b``, ``a.b``) would share a fragment;
    ``set`` refuses to overwrite a fragment that belongs to another model.
    """
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def upstream_variable(model: str) -> str:
    """The variable a fragment defines for ``model``: use it in ``proxy_pass``."""
    return f"$modelreg_{_safe(model)}_upstream"


def fragment_path(include_dir: str | Path, model: str) -> Path:
    """Where ``model``'s fragment lives (matches ``include .../modelreg-*.conf``)."""
    return Path(include_dir) / f"modelreg-{_safe(model)}.conf"


def _upstream_name(model: str, version: str) -> str:
    return f"modelreg_{_safe(model)}__{_safe(version)}"


def _default_runner(timeout_s: float) -> Runner:
    def run(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(command), capture_output=True, text=True, timeout=timeout_s, check=False
        )

    return run


def _write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename, fsync the directory."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # nginx workers may run as another user
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class NginxRouter:
    """Renders, tests and loads one nginx fragment per model."""

    def __init__(
        self,
        *,
        include_dir: str | Path,
        main_config: str | Path,
        upstreams: Mapping[str, Any],
        nginx: str = "/usr/sbin/nginx",
        pid_file: str | Path | None = None,
        mode: Mode = "split_clients",
        key: str = "$request_id",
        timeout_s: float = 30.0,
        run: Runner | None = None,
    ) -> None:
        if mode not in ("split_clients", "weighted"):
            raise ValueError(f"nginx router: mode must be split_clients or weighted, not {mode!r}")
        try:
            self.key = _nginx_variable(key)
        except ValueError as exc:
            raise ValueError(f"nginx router: key: {exc}") from None
        try:
            self._upstreams = _parse_upstreams(upstreams)
        except ValueError as exc:
            raise ValueError(f"nginx router: upstreams: {exc}") from None
        self.include_dir = Path(include_dir)
        self.main_config = Path(main_config)
        self.nginx = nginx
        self.pid_file = Path(pid_file) if pid_file is not None else None
        self.mode: Mode = mode
        self._run = run if run is not None else _default_runner(timeout_s)
        self._lock = threading.Lock()
        self._reloaded = False  # has this process seen nginx load the fragments?

    # -- Router protocol ---------------------------------------------------------

    def set(self, route: Route) -> None:
        """Write, test and load ``route``'s fragment; on any failure the old one stays."""
        text = self.render(route)
        path = fragment_path(self.include_dir, route.model)
        with self._locked():
            previous = path.read_bytes() if path.exists() else None
            if previous is not None:
                owner = _header_model(previous.decode("utf-8", "replace"))
                if owner not in (None, route.model):
                    raise RouterError(
                        f"nginx router: {path} holds model {owner!r}; {route.model!r} maps to "
                        "the same file name (rename one model)"
                    )
            written = previous == text.encode()
            if written and self._reloaded:
                return  # on disk and loaded; nginx -t/reload would change nothing
            if not written:
                _write_atomically(path, text.encode())
            try:
                self._test()
                self._reload()
            except RouterError:
                if not written:
                    self._restore(path, previous)
                raise
            self._reloaded = True

    def read(self, model: str) -> Route | None:
        """The route nginx serves for ``model``: its fragment's, or None when there is
        no fragment or this process has not reloaded nginx yet (see the module doc)."""
        route = self.written(model)
        return route if self._reloaded else None

    def written(self, model: str) -> Route | None:
        """The route in ``model``'s fragment on disk, or None when there is no fragment."""
        path = fragment_path(self.include_dir, model)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RouterError(f"nginx fragment {path}: {exc.strerror}") from exc
        return _parse_fragment(text, model=model, path=path)

    # -- rendering ---------------------------------------------------------------

    def addresses(self, model: str, version: str) -> tuple[str, ...]:
        """The upstream servers configured for ``version`` of ``model``."""
        per_model = self._upstreams.get(model) or self._upstreams.get("*") or {}
        found = per_model.get(version)
        if not found:
            raise RouterError(
                f"nginx router: no upstream address configured for {model!r} version "
                f"{version!r} (configured: {', '.join(sorted(per_model)) or 'none'})"
            )
        return found

    def render(self, route: Route) -> str:
        """The fragment for ``route`` (pure apart from the upstream lookup)."""
        live = [b for b in route.backends if b.weight > 0]
        if not live:
            raise RouterError(f"nginx router: route for {route.model!r} sends traffic nowhere")
        if not _SALT_RE.fullmatch(route.salt):
            raise RouterError(
                f"nginx router: salt {route.salt!r} for {route.model!r} has characters "
                "nginx would need quoted; use letters, digits, _ . : -"
            )
        names = {_upstream_name(route.model, b.version) for b in route.backends}
        if len(names) != len(route.backends):
            raise RouterError(
                f"nginx router: versions of {route.model!r} collide once made nginx names"
            )
        header = json.dumps(route.to_dict(), sort_keys=True, separators=(",", ":"))
        variable = upstream_variable(route.model)
        lines = [
            f"# Written by modelreg for model {route.model!r}; edits are overwritten.",
            _HEADER + header,
        ]
        if self.mode == "split_clients":
            for backend in live:
                servers = " ".join(
                    f"server {a};" for a in self.addresses(route.model, backend.version)
                )
                lines.append(
                    f"upstream {_upstream_name(route.model, backend.version)} {{ {servers} }}"
                )
            key = "${" + self.key[1:] + "}" + route.salt
            lines.append(f'split_clients "{key}" {variable} {{')
            for backend in live[:-1]:
                lines.append(
                    f"    {backend.weight}% {_upstream_name(route.model, backend.version)};"
                )
            lines.append(f"    * {_upstream_name(route.model, live[-1].version)};")
            lines.append("}")
        else:
            # nginx weights are per server: scale so that every version's servers
            # together carry the version's share, whatever their number.
            by_version = {b.version: self.addresses(route.model, b.version) for b in live}
            scale = math.lcm(*(len(a) for a in by_version.values()))
            name = f"modelreg_{_safe(route.model)}"
            lines.append(f"upstream {name} {{")
            for backend in live:
                each = backend.weight * scale // len(by_version[backend.version])
                for address in by_version[backend.version]:
                    lines.append(f"    server {address} weight={each}; # version={backend.version}")
            lines.append("}")
            lines.append(f"map $request_id {variable} {{ default {name}; }}")
        return "\n".join(lines) + "\n"

    # -- nginx -------------------------------------------------------------------

    def _test(self) -> None:
        done = self._command([self.nginx, "-t", "-q", "-c", str(self.main_config)], "test")
        if done.returncode != 0:
            raise RouterError(
                f"nginx -t rejected the new config; the previous fragment stays: "
                f"{_tail(done.stderr or done.stdout)}"
            )

    def _reload(self) -> None:
        if self.pid_file is not None:
            try:
                pid = int(self.pid_file.read_text().strip())
                os.kill(pid, signal.SIGHUP)
            except (OSError, ValueError) as exc:
                raise RouterError(
                    f"nginx reload via pid file {self.pid_file} failed; the previous fragment "
                    f"stays: {exc}"
                ) from exc
            return
        done = self._command([self.nginx, "-s", "reload", "-c", str(self.main_config)], "reload")
        if done.returncode != 0:
            raise RouterError(
                f"nginx -s reload failed; the previous fragment stays: "
                f"{_tail(done.stderr or done.stdout)}"
            )

    def _command(self, command: Sequence[str], what: str) -> subprocess.CompletedProcess[str]:
        try:
            return self._run(command)
        except (OSError, subprocess.SubprocessError) as exc:
            raise RouterError(f"nginx {what} could not run ({' '.join(command)}): {exc}") from exc

    def _restore(self, path: Path, previous: bytes | None) -> None:
        if previous is None:
            path.unlink(missing_ok=True)
            _fsync_dir(path.parent)
        else:
            _write_atomically(path, previous)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time: threads via a lock, processes via flock."""
        self.include_dir.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.include_dir / ".modelreg.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _tail(text: str, limit: int = 600) -> str:
    return " ".join(text.strip().split())[-limit:] or "no output"


def _nginx_variable(key: str) -> str:
    if not _VARIABLE_RE.fullmatch(key):
        raise ValueError(f"expected one nginx variable like $request_id, not {key!r}")
    return key


def _parse_upstreams(raw: Mapping[str, Any]) -> dict[str, dict[str, tuple[str, ...]]]:
    """``{version: addr}`` for all models (stored under "*"), or ``{model: {version: addr}}``.

    The one check of the ``upstreams`` option: ``NginxOptions`` runs it before the
    schema's types, so each mistake is one message naming the version (the caller
    names ``upstreams``)."""
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError("expected versions mapped to addresses, or models to {version: address}")
    nested = all(isinstance(v, Mapping) for v in raw.values())
    table = {str(m): v for m, v in raw.items()} if nested else {"*": raw}
    parsed: dict[str, dict[str, tuple[str, ...]]] = {}
    for model, versions in table.items():
        parsed[model] = {}
        where = "" if model == "*" else f"{model}."
        if not versions:
            raise ValueError(f"{model}: maps no version to an address")
        for version, addresses in versions.items():
            listed = [addresses] if isinstance(addresses, str) else addresses
            if not isinstance(listed, list | tuple) or not listed:
                raise ValueError(f"{where}{version}: expected an address or a list of addresses")
            for address in listed:
                if not isinstance(address, str) or not _ADDRESS_RE.fullmatch(address):
                    raise ValueError(f"{where}{version}: {address!r} is not an address")
            parsed[model][str(version)] = tuple(listed)
    return parsed


def _upstreams_option(raw: Any) -> Any:
    """``upstreams`` as written, checked by ``_parse_upstreams``, with string keys."""
    _parse_upstreams(raw)
    return {
        str(key): {str(v): a for v, a in value.items()} if isinstance(value, Mapping) else value
        for key, value in raw.items()
    }


Addresses = str | list[str]


class NginxOptions(RouterOptions):
    """Options of ``kind: nginx``: where fragments go, how nginx is tested and reloaded,
    how traffic is split, and the servers behind each version."""

    include_dir: str = Field(
        min_length=1,
        description="Directory of the per-model fragments (modelreg-<model>.conf), included "
        "inside http {} by the main config (required).",
    )
    main_config: str = Field(
        min_length=1,
        description="nginx's main config file, for `nginx -t -c` and the reload (required).",
    )
    nginx: str = Field(default="/usr/sbin/nginx", min_length=1, description="The nginx binary.")
    pid_file: str | None = Field(
        default=None,
        min_length=1,
        description="Reload by SIGHUP to the pid in this file; without it, "
        "`nginx -s reload -c main_config`.",
    )
    mode: Mode = Field(
        default="split_clients",
        description="split_clients: hash `key` into percent buckets (sticky per key); "
        "weighted: one upstream with server weights (exact proportions, not sticky).",
    )
    key: Annotated[str, AfterValidator(_nginx_variable)] = Field(
        default="$request_id",
        description="The split_clients hash key: one nginx variable, e.g. $cookie_uid to "
        "keep a client on one version.",
    )
    upstreams: Annotated[
        dict[str, Addresses | dict[str, Addresses]], BeforeValidator(_upstreams_option)
    ] = Field(
        description="Version -> address (host:port or unix:path) or list of addresses, "
        "for every model; or model -> {version: addresses} (required).",
    )
    timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="Seconds each nginx command may take."
    )


_SPLIT_LINE = re.compile(r"^\s*(\d+(?:\.\d+)?%|\*)\s+(\S+);\s*$")
_WEIGHT_LINE = re.compile(r"^\s*server\s+\S+\s+weight=(\d+);\s*#\s*version=(\S+)\s*$")


def _is_split(text: str) -> bool:
    return re.search(r"^split_clients ", text, re.MULTILINE) is not None


def _fragment_weights(text: str) -> dict[str, int]:
    """Percent per upstream name (split_clients) or per version (weighted servers)."""
    weights: dict[str, int] = {}
    if _is_split(text):
        rest = 100
        for line in text.splitlines():
            match = _SPLIT_LINE.match(line)
            if match is None:
                continue
            share, name = match.groups()
            if share == "*":
                weights[name] = rest
            else:
                weights[name] = round(float(share[:-1]))
                rest -= weights[name]
        return weights
    per_version: dict[str, int] = {}
    for line in text.splitlines():
        match = _WEIGHT_LINE.match(line)
        if match is not None:
            version = match.group(2)
            per_version[version] = per_version.get(version, 0) + int(match.group(1))
    total = sum(per_version.values())
    if total <= 0:
        return weights
    return {v: round(100 * w / total) for v, w in per_version.items()}


def _header_model(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith(_HEADER):
            try:
                return str(json.loads(line[len(_HEADER) :])["model"])
            except (ValueError, KeyError, TypeError):
                return None
    return None


def _parse_fragment(text: str, *, model: str, path: Path) -> Route:
    header = next((line for line in text.splitlines() if line.startswith(_HEADER)), None)
    if header is None:
        raise RouterError(f"nginx fragment {path}: no {_HEADER.strip()} header line")
    try:
        recorded = Route.from_dict(json.loads(header[len(_HEADER) :]))
    except (ValueError, KeyError, TypeError) as exc:
        raise RouterError(f"nginx fragment {path}: unreadable header: {exc}") from exc
    if recorded.model != model:
        raise RouterError(f"nginx fragment {path} is for model {recorded.model!r}, not {model!r}")
    weights = _fragment_weights(text)
    by_name = {
        (_upstream_name(model, b.version) if _is_split(text) else b.version): b
        for b in recorded.backends
    }
    unknown = sorted(set(weights) - set(by_name))
    if unknown:
        raise RouterError(f"nginx fragment {path}: upstream(s) {', '.join(unknown)} not in header")
    backends = tuple(
        Backend(b.version, weights.get(name, 0), b.digest) for name, b in by_name.items()
    )
    try:
        parsed = Route(model, backends, revision=recorded.revision, salt=recorded.salt)
    except ValueError as exc:
        raise RouterError(f"nginx fragment {path}: {exc}") from exc
    if parsed != recorded:
        raise RouterError(
            f"nginx fragment {path}: directives disagree with the header (edited by hand?)"
        )
    return parsed


@register_router("nginx", options=NginxOptions)
def build_nginx_router(options: NginxOptions) -> NginxRouter:
    """The factory for ``kind: nginx``."""
    return NginxRouter(
        include_dir=options.include_dir,
        main_config=options.main_config,
        upstreams=options.upstreams,
        nginx=options.nginx,
        pid_file=options.pid_file,
        mode=options.mode,
        key=options.key,
        timeout_s=options.timeout_s,
    )
