"""Router, source and notification options: ``config check`` validates what the daemon builds.

Every kind's options model is the one check: a bad option (unknown key, wrong type,
out of bounds) is refused by the real ``modelreg config check`` with one line naming
the key path, by ``load_config`` with the same line, and by the real ``modelreg
daemon`` with the same message. What only the running process can tell (an unset
variable, an unreadable file) is a ``config check`` warning and the line
``Daemon.build`` refuses with, before it opens anything. The JSON Schema shows each
kind's options.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from controller.adapters.routing import ROUTERS
from controller.cli import app
from controller.config import environment_problems, load_config
from controller.errors import ConfigError
from controller.runtime.daemon import Daemon
from monitors import SOURCE_KINDS

ROOT = Path(__file__).parents[2]
NGINX = {"include_dir": "modelreg.d", "main_config": "/etc/nginx/nginx.conf",
         "upstreams": {"v1": "127.0.0.1:9001"}}  # fmt: skip
HOOK = {"url": "http://127.0.0.1:9/routes", "secret": "s3cret"}
HAPROXY = {"socket": "/run/haproxy/admin.sock", "servers": {"v1": "s1"}}
PROM = {"url": "http://127.0.0.1:9090"}
VALID: dict[str, dict[str, Any]] = {
    "file": {"path": "routes.json"},
    "http": {},
    "nginx": NGINX,
    "haproxy": HAPROXY,
    "webhook": HOOK,
    "prometheus": PROM,
    "ingest": {"url": "sqlite:///ingest.db"},
}

# (section, kind, options, the option that must be named): for each kind an unknown
# key, a wrong type and a value out of bounds (http takes no options at all).
CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("routers", "file", {"path": "routes.json", "mode": "fast"}, "mode"),
    ("routers", "file", {"path": 3}, "path"),
    ("routers", "file", {"path": ""}, "path"),
    ("routers", "http", {"port": 8080}, "port"),
    ("routers", "nginx", {**NGINX, "reload_command": "nginx -s reload"}, "reload_command"),
    ("routers", "nginx", {**NGINX, "timeout_s": "30"}, "timeout_s"),
    ("routers", "nginx", {**NGINX, "timeout_s": 0}, "timeout_s"),
    ("routers", "nginx", {**NGINX, "upstreams": {"v1": "a b"}}, "upstreams"),
    ("routers", "haproxy", {**HAPROXY, "timeout_s": 0}, "timeout_s"),
    ("routers", "haproxy", {**HAPROXY, "servers": {"v1": "a b"}}, "servers"),
    ("routers", "haproxy", {**HAPROXY, "reload": True}, "reload"),
    ("routers", "webhook", {**HOOK, "retries": 3}, "retries"),
    ("routers", "webhook", {**HOOK, "attempts": "4"}, "attempts"),
    ("routers", "webhook", {**HOOK, "attempts": 0}, "attempts"),
    ("sources", "prometheus", {**PROM, "timout": 5}, "timout"),
    ("sources", "prometheus", {**PROM, "timeout": "5"}, "timeout"),
    ("sources", "prometheus", {**PROM, "scrape_interval": 0}, "scrape_interval"),
    ("sources", "ingest", {"path": "ingest.db"}, "path"),
    ("sources", "ingest", {"max_samples": 1.5}, "max_samples"),
    ("sources", "ingest", {"max_samples": -1}, "max_samples"),
]
TARGETS: list[tuple[dict[str, Any], str]] = [  # notifications: target, key named
    ({"url": "http://127.0.0.1:9/hook", "colour": "red"}, "colour"),
    ({"url": "http://127.0.0.1:9/hook", "attempts": "five"}, "attempts"),
    ({"url": "http://127.0.0.1:9/hook", "timeout_s": 0}, "timeout_s"),
]


def _key(index: int) -> str:
    section, kind, _, option = CASES[index]
    return f"{section}.bad{index}_{kind}.options.{option}"


def _modelreg(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "controller", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def _errors(stderr: str) -> list[str]:
    prefix = "error: "
    return [line.removeprefix(prefix) for line in stderr.splitlines() if line.startswith(prefix)]


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One file with every bad case (each under its own name), checked once by each
    command (a start of the command costs seconds)."""
    data: dict[str, Any] = {"routers": {}, "sources": {}}
    for index, (section, kind, options, _) in enumerate(CASES):
        data[section][f"bad{index}_{kind}"] = {"kind": kind, "options": options}
    data["notifications"] = [target for target, _ in TARGETS]
    file = tmp_path_factory.mktemp("bad") / "config.yaml"
    file.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as refused:
        load_config(file)
    return {
        "file": file,
        "refused": refused.value,
        "check": _modelreg("config", "check", str(file)),
        "daemon": _modelreg("daemon", "--config", str(file)),
    }


class TestBadOptions:
    def test_every_kind_has_cases(self) -> None:
        """Each registered router and source kind is exercised below."""
        assert {kind for _, kind, _, _ in CASES} == set(ROUTERS) | set(SOURCE_KINDS)
        assert set(VALID) == set(ROUTERS) | set(SOURCE_KINDS)

    @pytest.mark.parametrize("index", range(len(CASES)), ids=_key)
    def test_config_check_names_the_key(self, bad: dict[str, Any], index: int) -> None:
        """`modelreg config check` exits 2 with one line naming file and key path, and
        load_config refuses with that same line."""
        check = bad["check"]
        assert check.returncode == 2, check.stdout + check.stderr
        lines = [line for line in _errors(check.stderr) if f"{_key(index)}:" in line]
        assert len(lines) == 1, check.stderr
        assert lines[0].startswith(f"{bad['file']}: {_key(index)}: ")
        assert lines[0] in bad["refused"].problems

    @pytest.mark.parametrize(("index", "key"), list(enumerate(k for _, k in TARGETS)))
    def test_notification_targets_too(self, bad: dict[str, Any], index: int, key: str) -> None:
        """A notification target's bad option is named the same way."""
        lines = [line for line in _errors(bad["check"].stderr)
                 if f"notifications[{index}].{key}:" in line]  # fmt: skip
        assert len(lines) == 1
        assert lines[0] in bad["refused"].problems

    def test_check_lists_exactly_what_load_config_refuses(self, bad: dict[str, Any]) -> None:
        """Nothing more, nothing less: one validation path."""
        assert _errors(bad["check"].stderr) == bad["refused"].problems

    def test_daemon_refuses_the_same_file_with_the_same_message(self, bad: dict[str, Any]) -> None:
        """`modelreg daemon` exits 2 with load_config's message (the first problem and
        how many more) and starts nothing."""
        daemon = bad["daemon"]
        assert daemon.returncode == 2, daemon.stderr
        assert _errors(daemon.stderr) == [str(bad["refused"])]
        assert str(bad["refused"]).startswith(bad["refused"].problems[0])
        assert not (bad["file"].parent / ".modelreg").exists()


class TestGoodOptions:
    def test_every_kind_loads_into_its_model(self, tmp_path: Path) -> None:
        """Valid options of every kind load, typed with the kind's own model."""
        data: dict[str, Any] = {"routers": {}, "sources": {}}
        for kind, options in VALID.items():
            section = "routers" if kind in ROUTERS else "sources"
            data[section][kind] = {"kind": kind, "options": options}
        file = tmp_path / "config.yaml"
        file.write_text(yaml.safe_dump(data))
        config = load_config(file)
        for name, router in config.routers.items():
            assert type(router.options) is ROUTERS[name].options
        for name, source in config.sources.items():
            assert type(source.options) is SOURCE_KINDS[name].options
        assert environment_problems(config) == []

    def test_options_may_be_left_out_only_when_nothing_is_required(self, tmp_path: Path) -> None:
        """`kind: http` and `kind: ingest` need no options; nginx without them is refused
        naming routers.NAME.options."""
        file = tmp_path / "config.yaml"
        file.write_text("routers: {pull: {kind: http}}\nsources: {events: {kind: ingest}}\n")
        assert load_config(file).routers["pull"].kind == "http"
        file.write_text("routers: {edge: {kind: nginx}}\n")
        with pytest.raises(ConfigError, match=r"config\.yaml: routers\.edge\.options: Field req"):
            load_config(file)


class TestEnvironment:
    @pytest.fixture
    def file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        monkeypatch.delenv("MODELREG_TEST_SECRET", raising=False)
        monkeypatch.delenv("MODELREG_TEST_HOOK", raising=False)
        data = {
            "registry": {"home": "state"},
            "routers": {"edge": {"kind": "webhook", "options": {
                "url": "http://127.0.0.1:9/routes", "secret_env": "MODELREG_TEST_SECRET"}}},
            "sources": {"prom": {"kind": "prometheus", "options": {
                "url": "http://127.0.0.1:9090", "cert": str(tmp_path / "client.pem")}}},
            "notifications": [{"url_env": "MODELREG_TEST_HOOK"}],
        }  # fmt: skip
        file = tmp_path / "config.yaml"
        file.write_text(yaml.safe_dump(data))
        return file

    def test_check_warns_and_the_daemon_refuses_with_the_same_line(self, file: Path) -> None:
        """An unset variable or an unreadable file: `config check` passes with a warning
        per problem; Daemon.build refuses with the first, before opening the registry."""
        expected = [
            f"{file}: routers.edge.options.secret_env: MODELREG_TEST_SECRET is not set",
            f"{file}: sources.prom.options.cert: {file.parent}/client.pem is not a readable file",
            f"{file}: notifications[0].url_env: MODELREG_TEST_HOOK is not set",
        ]
        result = CliRunner().invoke(app, ["config", "check", str(file)])
        assert result.exit_code == 0, result.output
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
        assert [w.removeprefix("warning: ").split(" (here;")[0] for w in warnings] == expected
        with pytest.raises(ConfigError) as refused:
            Daemon.build(load_config(file))
        assert str(refused.value) == expected[0]
        assert refused.value.problems == expected
        assert not (file.parent / "state").exists()

    def test_set_and_readable_is_quiet(self, file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """With the variables set and the file there, nothing is reported."""
        monkeypatch.setenv("MODELREG_TEST_SECRET", "s3cret")
        monkeypatch.setenv("MODELREG_TEST_HOOK", "http://127.0.0.1:9/hook")
        (file.parent / "client.pem").write_text("-----BEGIN CERTIFICATE-----\n")
        assert environment_problems(load_config(file)) == []


class TestSchema:
    @pytest.mark.parametrize("section", ["routers", "sources"])
    def test_one_member_per_kind_with_its_options(self, section: str) -> None:
        """`routers`/`sources` entries are a oneOf whose members pin `kind` with const and
        reference that kind's options schema, unknown keys refused."""
        result = CliRunner().invoke(app, ["config", "schema"])
        assert result.exit_code == 0
        schema = json.loads(result.output)
        registry = ROUTERS if section == "routers" else SOURCE_KINDS
        defs = schema["$defs"]
        members = schema["properties"][section]["additionalProperties"]["oneOf"]
        seen = {}
        for ref in members:
            member = defs[ref["$ref"].rsplit("/", 1)[1]]
            kind = member["properties"]["kind"]["const"]
            options = defs[member["properties"]["options"]["$ref"].rsplit("/", 1)[1]]
            seen[kind] = options
        assert set(seen) == set(registry)
        for kind, options in seen.items():
            model = registry[kind].options
            assert options["additionalProperties"] is False
            assert set(options.get("properties", {})) == set(model.model_fields)

    def test_every_option_is_documented(self) -> None:
        """Each option of each kind (and of a notification target) has a description."""
        from controller.adapters.notify import NotificationTarget

        models = [k.options for k in ROUTERS.values()] + [k.options for k in SOURCE_KINDS.values()]
        for model in [*models, NotificationTarget]:
            undocumented = [n for n, f in model.model_fields.items() if not f.description]
            assert not undocumented, f"{model.__name__}: {undocumented}"

    def test_nginx_options_in_the_published_schema(self) -> None:
        """config/schema.json carries them (test_cli checks it is the current schema)."""
        published = json.loads((ROOT / "config" / "schema.json").read_text())
        nginx = published["$defs"]["NginxOptions"]
        assert nginx["required"] == ["include_dir", "main_config", "upstreams"]
        assert nginx["properties"]["timeout_s"]["exclusiveMinimum"] == 0
