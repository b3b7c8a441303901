"""The daemon's one YAML file, validated with pydantic.

Sections: ``registry`` (database URL, home, artifact store), ``server`` (listen address,
tokens file, which ingest source takes the HTTP intake), ``sources`` and
``routers`` (by name, each with a ``kind:`` and its ``options``), ``alerts``
(Alertmanager label matchers mapped to an action on a model), ``notifications``
(webhooks told of decisions), ``guard`` (guarding production versions) and
``models``: one rollout policy per model name.
Unknown keys anywhere are errors; every error is a ``ConfigError`` naming the
file, the key path (``models.fraud.strategy.steps``) and what was expected.
Relative paths (``registry.home``, a local ``registry.artifacts``, a file router's
``path``, ``sqlite:///`` URLs) are resolved against the config file's directory.

A router's or source's ``options`` are validated with the options model its kind
registered (``controller.adapters.routing.register_router``,
``monitors.register_source``), the very model its factory builds from: each
``routers.NAME`` / ``sources.NAME`` is one member of a union told apart by ``kind``,
so ``config check``, the daemon and the JSON Schema (``modelreg config schema``) see
the same options. What only the running process can tell (an environment variable
that is not set, a secret or CA file it cannot read) is not a validation error:
``environment_problems`` lists it, ``config check`` prints it as a warning (it may
run where the daemon's environment is not) and the daemon refuses to start with
the same line.

``load_config(path)`` is the only entry point; ``Config`` objects are frozen.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from controller.adapters import routers  # noqa: F401 -- importing it registers every router kind
from controller.adapters.notify import NotificationTarget
from controller.adapters.routing import ROUTERS, RouterOptions
from controller.core.policy import (
    MAX_SECONDS,
    AnalysisConfig,
    ApprovalConfig,
    CanaryStrategy,
    FixedStrategy,
    MetricConfig,
    PolicyConfig,
    Strict,
    TriggerConfig,
    UnitsConfig,
)
from controller.errors import ConfigError
from monitors import SOURCE_KINDS, AlertRule, SourceOptions
from registry.errors import InvalidInput
from registry.storage_uri import artifact_location

__all__ = [
    "AnalysisConfig",
    "ApprovalConfig",
    "CanaryStrategy",
    "Config",
    "ConfigError",
    "FixedStrategy",
    "GuardSection",
    "HaSection",
    "MetricConfig",
    "NotificationTarget",
    "PolicyConfig",
    "RouterConfig",
    "SourceConfig",
    "TriggerConfig",
    "UnitsConfig",
    "environment_problems",
    "load_config",
    "parse_config",
]


class RegistrySection(Strict):
    """Where the registry lives: ``url`` defaults to ``sqlite:///<home>/registry.db``;
    ``artifacts`` to ``<home>/artifacts``, or a directory, or ``s3://``, ``gs://``,
    ``az://BUCKET/PREFIX`` (credentials from the provider's environment, e.g. the
    unit's ``AWS_*`` variables or ``~/.aws``; never in this file)."""

    # kind mlflow: the MLflow tracking server at tracking_uri is the registry
    # (MLflowRegistry) and governance its modelreg database (default
    # sqlite:///<home>/mlflow-governance.db), which also holds the daemon's tables.
    kind: Literal["modelreg", "mlflow"] = "modelreg"
    tracking_uri: str | None = None
    governance: str | None = None
    url: str | None = None
    home: str = ".modelreg"
    artifacts: str | None = None

    @field_validator("artifacts")
    @classmethod
    def _artifact_location(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                artifact_location(value)
            except InvalidInput as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _mlflow_keys(self) -> RegistrySection:
        if self.kind == "mlflow":
            if not self.tracking_uri:
                raise ValueError("kind mlflow needs tracking_uri (http(s)://host:port)")
            if self.url is not None:
                raise ValueError("kind mlflow: name its database with governance, not url")
        elif self.tracking_uri is not None or self.governance is not None:
            raise ValueError("tracking_uri and governance belong to kind: mlflow")
        return self


class ServerSection(Strict):
    """The daemon's HTTP API."""

    listen: str = "127.0.0.1:8470"
    tokens_file: str | None = None
    ingest_source: str | None = None  # the ingest source that /v1/ingest writes to
    # Request bodies over these are refused with 413 before they are read (controller.http.limits).
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    max_ingest_body_bytes: int = Field(default=67_108_864, gt=0)  # /v1/ingest/ batches
    # On SIGTERM, how long running evaluations may finish before they are abandoned;
    # keep it below the unit's TimeoutStopSec (30 s).
    stop_timeout_s: float = Field(default=20.0, gt=0, le=MAX_SECONDS)
    # Under a systemd watchdog: how long the reconcile loop may go without starting a
    # pass before pings stop (default: 2 x WatchdogSec, at least 3 watch intervals).
    watchdog_stale_s: float | None = Field(default=None, gt=0, le=MAX_SECONDS)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:8470")
        return value


class SourceConfig(Strict):
    """A metric source by name: its ``kind`` and that kind's ``options``."""

    kind: str
    options: SourceOptions


class RouterConfig(Strict):
    """A router by name: its ``kind`` and that kind's ``options``."""

    kind: str
    options: RouterOptions


def _by_kind(base: type[Strict], kinds: Mapping[str, type[BaseModel]]) -> Any:
    """One subclass of ``base`` per kind, its ``options`` typed with the kind's model, in
    a union told apart by ``kind``: only that model validates the options (its errors
    keep their key paths), and the JSON Schema is a ``oneOf`` whose members each pin
    ``kind`` with ``const``. Options that need nothing may be left out."""
    members = []
    for kind, options in sorted(kinds.items()):
        required = any(f.is_required() for f in options.model_fields.values())
        tag: Any = Literal[kind]
        members.append(
            create_model(
                f"{kind.title()}{base.__name__}",
                __base__=base,
                __doc__=options.__doc__,
                kind=(tag, ...),
                options=(options, ... if required else Field(default_factory=options)),
            )
        )
    return Annotated[Union[tuple(members)], Field(discriminator="kind")]  # noqa: UP007


if TYPE_CHECKING:
    AnySource = SourceConfig
    AnyRouter = RouterConfig
else:
    AnySource = _by_kind(SourceConfig, {k: v.options for k, v in SOURCE_KINDS.items()})
    AnyRouter = _by_kind(RouterConfig, {k: v.options for k, v in ROUTERS.items()})


class AlertRoute(Strict):
    """Alertmanager alerts whose labels match ``match`` trigger ``action`` on the active
    rollout of the model named by the ``model_label`` label (and, with
    ``version_label``, only when that label names the rollout's candidate).
    ``match`` is a mapping (label: value) or a list of matchers (``severity=~"crit.*"``).
    """

    name: str = ""
    match: dict[str, str] | list[str] = Field(min_length=1)
    action: Literal["rollback", "pause", "abort"] = "rollback"
    model_label: str = "model"
    version_label: str | None = None

    def rule(self, index: int) -> AlertRule:
        return AlertRule.from_config(
            self.model_dump(exclude_none=True, exclude={"name"}), name=self.name or f"alert{index}"
        )


class GuardSection(Strict):
    """Guarding production versions (``controller.shell.guard_pass``): one pass every
    ``interval`` seconds over every model whose production version has triggers (its
    policy's ``triggers`` or the registry's auto-rollback triggers) and no active
    rollout. Policy triggers are judged over the last ``window`` seconds, and a guard
    rollback blocks the next one for ``cooldown`` seconds (registry triggers carry
    their own window and cooldown). ``source``: where a metric no policy defines is
    measured (default: the ingest source), by its name as the statistic.
    ``min_samples``: the fewest observations a policy trigger needs in the window
    before it may roll production back (its own ``min_samples`` when larger), since
    canary triggers often leave it at 0.
    """

    enabled: bool = True
    interval: float = Field(default=60.0, gt=0, le=MAX_SECONDS)
    window: float = Field(default=3600.0, gt=0, le=MAX_SECONDS)
    cooldown: float = Field(default=3600.0, ge=0, le=MAX_SECONDS)
    min_samples: int = Field(default=100, ge=1)
    source: str | None = None


class HaSection(Strict):
    """Several daemons on one PostgreSQL database, each owning a share of the models'
    shards under leases timed by the database (README: "Running several daemons")."""

    enabled: bool = False
    member_id: str | None = Field(default=None, min_length=1, max_length=128)  # default: host:port
    lease_ttl: float = Field(default=15.0, ge=1.0, le=600.0)  # seconds; renewed every ttl/3
    shards: int = Field(default=64, ge=1, le=4096)  # the same on every member
    # Actions sent to a member that does not own the model: recorded, applied by the
    # owner (polled every request_poll s), answered after at most request_wait s
    # (202 with the request's id after that), dropped unapplied after request_ttl s.
    request_poll: float = Field(default=0.2, ge=0.05, le=10.0)
    request_wait: float = Field(default=10.0, ge=0.0, le=120.0)
    request_ttl: float = Field(default=600.0, ge=10.0, le=86_400.0)


class Config(Strict):
    registry: RegistrySection = Field(default_factory=RegistrySection)
    server: ServerSection = Field(default_factory=ServerSection)
    sources: dict[str, AnySource] = Field(default_factory=dict)
    routers: dict[str, AnyRouter] = Field(min_length=1)
    alerts: list[AlertRoute] = Field(default_factory=list)
    notifications: list[NotificationTarget] = Field(default_factory=list)
    models: dict[str, PolicyConfig] = Field(default_factory=dict)
    watch_interval: float = Field(default=5.0, gt=0, le=MAX_SECONDS)
    guard: GuardSection = Field(default_factory=GuardSection)
    ha: HaSection = Field(default_factory=HaSection)
    source_file: str = ""  # where it was loaded from (set by load_config)

    def registry_url(self) -> str:
        if self.registry.kind == "mlflow":
            home = Path(self.registry.home)
            return self.registry.governance or f"sqlite:///{home / 'mlflow-governance.db'}"
        return self.registry.url or f"sqlite:///{Path(self.registry.home) / 'registry.db'}"

    def ingest_source_name(self) -> str | None:
        if self.server.ingest_source is not None:
            return self.server.ingest_source
        names = [n for n, s in self.sources.items() if s.kind == "ingest"]
        return names[0] if names else None


_KIND_TAGS = {("routers", k) for k in ROUTERS} | {("sources", k) for k in SOURCE_KINDS}


def _loc(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for index, item in enumerate(loc):
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("canary", "fixed") and parts and parts[-1].endswith("strategy"):
            continue  # the discriminated union's tag is noise in a key path
        elif index == 2 and (loc[0], item) in _KIND_TAGS:
            continue  # ditto: routers.NAME.<kind>.options
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _problem(where: str, error: ErrorDetails) -> str:
    """``FILE: key.path: what was expected``; a ``kind`` nobody registered is named
    at ``.kind`` with the known kinds."""
    loc, message = _loc(error["loc"]), error["msg"]
    ctx = error.get("ctx") or {}
    if error["type"] == "union_tag_invalid":
        known = str(ctx.get("expected_tags", "")).replace("'", "")
        loc, message = f"{loc}.kind", f"unknown kind {ctx.get('tag')!r}; known kinds: {known}"
    elif error["type"] == "union_tag_not_found":
        loc, message = f"{loc}.kind", "Field required"
    return f"{where}: {loc}: {message}"


def _cross_check(config: Config, where: str) -> None:
    """Names that refer to other sections must exist; policies must be able to decide."""
    for name, policy in config.models.items():
        _check_policy(config, policy, where, f"models.{name}")
    _check_alerts(config, where)
    _check_ha(config, where)
    if config.guard.source is not None and config.guard.source not in config.sources:
        raise ConfigError(f"{where}: guard.source: unknown source {config.guard.source!r}")
    ingest = config.server.ingest_source
    if ingest is not None and (ingest not in config.sources or
                               config.sources[ingest].kind != "ingest"):  # fmt: skip
        raise ConfigError(f"{where}: server.ingest_source: expected the name of an ingest source")


def _check_policy(config: Config, policy: PolicyConfig, where: str, base: str) -> None:
    if policy.router not in config.routers:
        raise ConfigError(
            f"{where}: {base}.router: unknown router {policy.router!r}; "
            f"defined routers: {', '.join(sorted(config.routers)) or 'none'}"
        )
    metrics = policy.analysis.metrics
    metric_names = [m.name for m in metrics]
    at = f"{where}: {base}.analysis.metrics"
    if len(set(metric_names)) != len(metric_names):
        raise ConfigError(f"{at}: metric names must be unique")
    if not any(m.role == "primary" for m in metrics):
        raise ConfigError(f"{at}: expected at least one metric with role: primary")
    if not any(m.direction for m in metrics):
        raise ConfigError(
            f"{at}: this analysis can never roll back: no metric has a direction, so none "
            "can be judged worse (set direction: higher or lower on each metric that matters)"
        )
    if not any(m.direction for m in metrics if m.role == "primary"):
        raise ConfigError(
            f"{at}: this analysis can never promote: no primary metric has a direction, so "
            "none can be judged better (set direction: higher or lower)"
        )
    for i, metric in enumerate(metrics):
        if metric.source not in config.sources:
            raise ConfigError(
                f"{at}[{i}].source: unknown source {metric.source!r}; defined sources: "
                f"{', '.join(sorted(config.sources)) or 'none'}"
            )
    units = policy.analysis.units.source
    if units is not None and units not in config.sources:
        raise ConfigError(f"{where}: {base}.analysis.units.source: unknown source {units!r}")
    for i, trigger in enumerate(policy.triggers):
        if trigger.metric not in metric_names:
            raise ConfigError(
                f"{where}: {base}.triggers[{i}].metric: expected one of the policy's "
                f"metrics ({', '.join(metric_names)}), got {trigger.metric!r}"
            )
    if policy.strategy.kind == "canary" and policy.strategy.steps == [100]:
        raise ConfigError(
            f"{where}: {base}.strategy.steps: expected at least one step below 100 "
            "(a step of 100 is the promotion itself)"
        )


def _check_alerts(config: Config, where: str) -> None:
    for i, route in enumerate(config.alerts):
        try:
            route.rule(i)
        except ValueError as exc:
            raise ConfigError(f"{where}: alerts[{i}]: {exc}") from None


def _check_ha(config: Config, where: str) -> None:
    """Several daemons share leases and fencing tokens in PostgreSQL; SQLite is one node."""
    if config.ha.enabled and not config.registry_url().startswith("postgresql"):
        raise ConfigError(
            f"{where}: ha.enabled: several daemons need a PostgreSQL registry.url "
            "(postgresql+psycopg://...); SQLite runs one daemon"
        )


def _resolve_registry(reg: dict[str, Any], base: Path) -> None:
    for key in ("home", "artifacts"):  # artifacts: only a local directory, not a URI
        path = reg.get(key)
        local = path if isinstance(path, str) and path and "://" not in path else None
        if local is not None and not Path(local).is_absolute():
            reg[key] = str(base / local)
    url = reg.get("url")
    if isinstance(url, str):
        reg["url"] = _sqlite_relative(url, base)


# Router and source options that name a file or directory: resolved against the
# config file's directory like every other path (nginx's ``nginx`` is a command,
# looked up on $PATH, and stays as written).
_PATH_OPTIONS = ("path", "main_config", "include_dir", "pid_file", "secret_file", "cert", "verify")
# haproxy's ``socket`` is a path when it holds a "/" (else host:port): resolved likewise.


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Make relative paths relative to the config file's directory."""
    reg = data.get("registry")
    if isinstance(reg, dict):
        _resolve_registry(reg, base)
    elif reg is None:
        data["registry"] = {"home": str(base / ".modelreg")}
    for section in ("routers", "sources"):
        entries = data.get(section)
        if not isinstance(entries, dict):
            continue
        for entry in entries.values():
            options = entry.get("options") if isinstance(entry, dict) else None
            if not isinstance(options, dict):
                continue
            for key in _PATH_OPTIONS:
                path = options.get(key)
                if isinstance(path, str) and path and not Path(path).is_absolute():
                    options[key] = str(base / path)
            sock = options.get("socket") if entry.get("kind") == "haproxy" else None
            if isinstance(sock, str) and "/" in sock and not Path(sock).is_absolute():
                options["socket"] = str(base / sock)
            url = options.get("url")
            if isinstance(url, str):
                options["url"] = _sqlite_relative(url, base)
    server = data.get("server")
    tokens = server.get("tokens_file") if isinstance(server, dict) else None
    if isinstance(server, dict) and isinstance(tokens, str) and not Path(tokens).is_absolute():
        server["tokens_file"] = str(base / tokens)


def _sqlite_relative(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str(base / url[len(prefix) :])
    return url


def parse_config(
    data: Mapping[str, Any], *, where: str = "<config>", base: Path | None = None
) -> Config:
    """Validate a mapping (already parsed YAML) into a ``Config``."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    raw = dict(data)
    if base is not None:
        raw = copy.deepcopy(raw)  # a copy we may edit
        _resolve_paths(raw, base)
    raw["source_file"] = where
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems = [_problem(where, e) for e in exc.errors()]
        more = len(problems) - 1
        suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
        raise ConfigError(problems[0] + suffix, problems) from None
    _cross_check(config, where)
    return config


def environment_problems(config: Config) -> list[str]:
    """What this process's environment lacks for the config's options, one line each
    (``FILE: routers.edge.options.secret_env: NAME is not set``): the daemon refuses
    to start with the first, ``config check`` warns with each."""
    where = config.source_file
    found = [
        f"{where}: {section}.{name}.options.{problem}"
        for section, entries in (("routers", config.routers), ("sources", config.sources))
        for name, entry in entries.items()
        for problem in entry.options.environment_problems()
    ]
    found += [
        f"{where}: notifications[{index}].{problem}"
        for index, target in enumerate(config.notifications)
        for problem in target.environment_problems()
    ]
    return found


# libyaml's parser when PyYAML was built with it (its wheels are): the pure-Python one
# took about 10 s of a 1,000-model config's 11 s start. Both construct safe types only.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_config(path: str | Path) -> Config:
    """Read and validate the YAML file at ``path``; ``ConfigError`` names file and key."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{file}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at {exc.start}): a "
            "config is a YAML text file"
        ) from None
    try:
        data = yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 -- a safe loader
        return parse_config(data or {}, where=str(file), base=file.resolve().parent)
    except yaml.YAMLError as exc:
        if getattr(exc, "problem", None) == "exceeded maximum nesting depth":  # libyaml's
            raise ConfigError(f"{file}: nested too deeply to be a config") from None
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    except RecursionError:  # reading, copying and validating recurse per level: [[[[...
        raise ConfigError(f"{file}: nested too deeply to be a config") from None
