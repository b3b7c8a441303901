"""controller.config: every example loads; bad files fail naming file, key path and expectation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from controller.adapters.routers.file import FileOptions
from controller.config import load_config, parse_config
from controller.errors import ConfigError

ROOT = Path(__file__).parents[2]
EXAMPLES = sorted((ROOT / "config").glob("*.yaml"))
READMES = [ROOT / "README.md", ROOT / "config" / "README.md"]


def _minimal() -> dict:
    return {
        "sources": {"events": {"kind": "ingest"}},
        "routers": {"table": {"kind": "file", "options": {"path": "routes.json"}}},
        "models": {
            "fraud": {
                "router": "table",
                "strategy": {"kind": "canary", "steps": [10, 50], "step_duration": 5},
                "analysis": {
                    "metrics": [
                        {"name": "acc", "source": "events", "query": "accuracy",
                         "kind": "proportion", "direction": "higher"}
                    ]
                },
            }
        },
    }  # fmt: skip


class TestExamples:
    def test_there_are_examples(self) -> None:
        """config/ holds at least the three documented examples."""
        assert len(EXAMPLES) >= 3

    @pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
    def test_example_loads(self, path: Path) -> None:
        """Each example file is a valid config with at least one model policy."""
        config = load_config(path)
        assert config.models
        assert config.source_file == str(path)


class TestReadmeBlocks:
    def test_yaml_blocks_are_valid_config(self) -> None:
        """Every ```yaml block of the READMEs, merged section by section into a minimal
        config, validates: documented options are options the daemon takes."""
        fence = re.compile(r"```yaml\n(.*?)```", re.DOTALL)
        blocks = [block for path in READMES for block in fence.findall(path.read_text())]
        assert blocks
        for block in blocks:
            data = _minimal()
            for section, value in yaml.safe_load(block).items():
                merged = isinstance(value, dict) and isinstance(data.get(section), dict)
                data[section] = {**data[section], **value} if merged else value
            parse_config(data, where="README")


def _error(data: dict, tmp_path: Path) -> str:
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(file)
    return str(info.value)


class TestErrors:
    def test_minimal_is_valid(self, tmp_path: Path) -> None:
        """The base used below is itself valid, and relative paths resolve to the file."""
        file = tmp_path / "ok.yaml"
        file.write_text(yaml.safe_dump(_minimal()))
        config = load_config(file)
        options = config.routers["table"].options
        assert isinstance(options, FileOptions)
        assert options.path == str(tmp_path / "routes.json")

    def test_every_relative_path_option_resolves_to_the_file(self, tmp_path: Path) -> None:
        """nginx's main_config, include_dir and pid_file and a webhook's secret_file are
        paths like any other; the nginx command stays as written (found on $PATH)."""
        data = _minimal()
        data["routers"]["edge"] = {
            "kind": "nginx",
            "options": {
                "main_config": "nginx/nginx.conf",
                "include_dir": "nginx/conf.d",
                "pid_file": "run/nginx.pid",
                "nginx": "nginx",
                "upstreams": {"v1.0.0": "127.0.0.1:9001"},
            },
        }
        data["routers"]["hook"] = {"kind": "webhook", "options": {
            "url": "http://127.0.0.1:1/routes", "secret_file": "secrets/hook"}}  # fmt: skip
        data["routers"]["lb"] = {"kind": "haproxy", "options": {
            "socket": "run/admin.sock", "servers": {"v1.0.0": "v1"}}}  # fmt: skip
        data["routers"]["lb_tcp"] = {"kind": "haproxy", "options": {
            "socket": "127.0.0.1:9999", "servers": {"v1.0.0": "v1"}}}  # fmt: skip
        file = tmp_path / "ok.yaml"
        file.write_text(yaml.safe_dump(data))
        config = load_config(file)
        edge = config.routers["edge"].options
        assert (edge.main_config, edge.include_dir, edge.pid_file, edge.nginx) == (  # type: ignore[union-attr]
            str(tmp_path / "nginx/nginx.conf"), str(tmp_path / "nginx/conf.d"),
            str(tmp_path / "run/nginx.pid"), "nginx",
        )  # fmt: skip
        hook = config.routers["hook"].options
        assert hook.secret_file == str(tmp_path / "secrets/hook")  # type: ignore[union-attr]
        assert config.routers["lb"].options.socket == str(tmp_path / "run/admin.sock")  # type: ignore[union-attr]
        assert config.routers["lb_tcp"].options.socket == "127.0.0.1:9999"  # type: ignore[union-attr]

    def test_unknown_top_level_key(self, tmp_path: Path) -> None:
        """An unknown key is an error naming it."""
        message = _error({**_minimal(), "modles": {}}, tmp_path)
        assert "bad.yaml" in message
        assert "modles" in message

    def test_nested_unknown_key_names_path(self, tmp_path: Path) -> None:
        """A typo deep inside a policy names the full key path."""
        data = _minimal()
        data["models"]["fraud"]["intervall"] = 3
        assert "models.fraud.intervall" in _error(data, tmp_path)

    def test_wrong_type_says_expected(self, tmp_path: Path) -> None:
        """A wrong type says what was expected."""
        data = _minimal()
        data["models"]["fraud"]["interval"] = "soon"
        message = _error(data, tmp_path)
        assert "models.fraud.interval" in message
        assert "number" in message

    def test_steps_must_increase(self, tmp_path: Path) -> None:
        """Canary steps out of order are refused with their key path."""
        data = _minimal()
        data["models"]["fraud"]["strategy"]["steps"] = [50, 10]
        message = _error(data, tmp_path)
        assert "models.fraud.strategy.steps" in message
        assert "increasing" in message

    def test_unknown_source(self, tmp_path: Path) -> None:
        """A metric naming an undefined source is an error naming both."""
        data = _minimal()
        data["models"]["fraud"]["analysis"]["metrics"][0]["source"] = "prom"
        message = _error(data, tmp_path)
        assert "models.fraud.analysis.metrics[0].source" in message
        assert "'prom'" in message

    def test_unknown_router(self, tmp_path: Path) -> None:
        """A policy naming an undefined router is an error."""
        data = _minimal()
        data["models"]["fraud"]["router"] = "nginx1"
        assert "models.fraud.router: unknown router 'nginx1'" in _error(data, tmp_path)

    def test_unknown_router_kind(self, tmp_path: Path) -> None:
        """An unknown router kind lists the known kinds."""
        data = _minimal()
        data["routers"]["table"]["kind"] = "carrier-pigeon"
        message = _error(data, tmp_path)
        assert "routers.table.kind" in message
        assert "file" in message

    def test_unknown_source_kind(self, tmp_path: Path) -> None:
        """An unknown source kind is refused at validation, not at first use."""
        data = _minimal()
        data["sources"]["events"]["kind"] = "graphite"
        assert "sources.events.kind" in _error(data, tmp_path)

    def test_trigger_on_unknown_metric(self, tmp_path: Path) -> None:
        """A trigger must watch one of the policy's metrics."""
        data = _minimal()
        data["models"]["fraud"]["triggers"] = [{"name": "t", "metric": "nope", "threshold": 1}]
        assert "models.fraud.triggers[0].metric" in _error(data, tmp_path)

    def test_not_yaml(self, tmp_path: Path) -> None:
        """Broken YAML names the file."""
        file = tmp_path / "broken.yaml"
        file.write_text("models: [\n")
        with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
            load_config(file)

    @pytest.mark.parametrize("key", ["interval", "max_duration"])
    def test_infinite_numbers_are_refused(self, tmp_path: Path, key: str) -> None:
        """YAML's .inf is no duration: refused with its key, not half-applied later."""
        data = _minimal()
        data["models"]["fraud"][key] = float("inf")
        message = _error(data, tmp_path)
        assert f"models.fraud.{key}" in message
        assert "finite number" in message

    def test_durations_are_bounded(self, tmp_path: Path) -> None:
        """A duration past a year (1e300 s overflowed every tick) is refused by key."""
        data = _minimal()
        data["models"]["fraud"]["interval"] = 1e300
        message = _error(data, tmp_path)
        assert "models.fraud.interval" in message
        assert "less than or equal to 31622400" in message

    def test_nested_too_deeply(self, tmp_path: Path) -> None:
        """[[[[... is one line, not a RecursionError."""
        file = tmp_path / "deep.yaml"
        file.write_text("models: " + "[" * 5000 + "]" * 5000 + "\n")
        with pytest.raises(ConfigError, match=r"deep\.yaml: nested too deeply to be a config"):
            load_config(file)

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is a ConfigError, not a traceback."""
        with pytest.raises(ConfigError, match="cannot read"):
            load_config(tmp_path / "nope.yaml")

    def test_parse_without_file(self) -> None:
        """parse_config validates a mapping with a caller-given name."""
        config = parse_config(_minimal(), where="inline")
        assert config.models["fraud"].settle_seconds == config.models["fraud"].interval


def _metric(**fields: object) -> dict:
    data = _minimal()
    data["models"]["fraud"]["analysis"]["metrics"][0].update(fields)
    return data


class TestDecisionPolicy:
    def test_relative_margin_as_a_percentage(self) -> None:
        """`margin: 10%` is 0.1 of the control's value."""
        data = _minimal()
        data["models"]["fraud"]["analysis"]["metrics"].append(
            {"name": "err", "source": "events", "query": "error_rate", "kind": "proportion",
             "role": "guardrail", "direction": "lower", "margin": "10%"}
        )  # fmt: skip
        metric = parse_config(data).models["fraud"].analysis.metrics[1]
        assert (metric.margin, metric.relative_margin) == (0.1, True)
        assert metric.analysis_spec().relative_margin

    @pytest.mark.parametrize(
        ("fields", "said"),
        [
            ({"margin": "ten%"}, "margin: expected a number or a percentage"),
            ({"margin": "-5%"}, "margin"),
            ({"margin": "5%", "relative_margin": False}, "relative_margin is false"),
            ({"margin": "nan"}, "margin"),
        ],
    )
    def test_bad_margins_named(self, tmp_path: Path, fields: dict, said: str) -> None:
        """A margin that is not a non-negative number or percentage is one clear error."""
        assert said in _error(_metric(**fields), tmp_path)

    def test_a_policy_that_can_never_roll_back_is_refused(self, tmp_path: Path) -> None:
        """With no direction on any metric nothing can be judged worse: refused, saying why."""
        message = _error(_metric(direction=None), tmp_path)
        assert "models.fraud.analysis.metrics" in message
        assert "can never roll back" in message
        assert "\n" not in message

    def test_a_policy_that_can_never_promote_is_refused(self, tmp_path: Path) -> None:
        """A guardrail with a direction but a primary without one can never promote."""
        data = _metric(direction=None)
        data["models"]["fraud"]["analysis"]["metrics"].append(
            {"name": "err", "source": "events", "query": "error_rate", "kind": "proportion",
             "role": "guardrail", "direction": "lower"}
        )  # fmt: skip
        assert "can never promote" in _error(data, tmp_path)

    def test_max_looks_is_not_a_setting(self, tmp_path: Path) -> None:
        """The number of looks comes from the policy: a constant is refused."""
        data = _minimal()
        data["models"]["fraud"]["analysis"]["max_looks"] = 50
        assert "max_looks" in _error(data, tmp_path)

    def test_examples_use_relative_margins(self) -> None:
        """Every guardrail margin in the example configs is relative to the control."""
        margins = [
            m for path in EXAMPLES for policy in load_config(path).models.values()
            for m in policy.analysis.metrics if m.role == "guardrail" and m.margin
        ]  # fmt: skip
        assert margins
        assert all(m.relative_margin for m in margins)

    def test_relative_margin_needs_a_control_value(self, tmp_path: Path) -> None:
        """A distribution metric's margin (rank-biserial) cannot be relative: refused."""
        data = _minimal()
        data["models"]["fraud"]["analysis"]["metrics"].append(
            {"name": "lat", "source": "events", "query": "latency", "kind": "distribution",
             "role": "guardrail", "direction": "lower", "margin": "10%"}
        )  # fmt: skip
        assert "rank-biserial" in _error(data, tmp_path)


class TestHa:
    def test_several_daemons_need_postgresql(self, tmp_path: Path) -> None:
        data = {**_minimal(), "ha": {"enabled": True}}
        assert "ha.enabled: several daemons need a PostgreSQL registry.url" in _error(
            data, tmp_path
        )

    def test_on_postgresql_the_section_is_taken(self) -> None:
        data = {**_minimal(), "ha": {"enabled": True, "member_id": "a", "lease_ttl": 10},
                "registry": {"url": "postgresql+psycopg://modelreg@db/modelreg"}}  # fmt: skip
        ha = parse_config(data, where="t").ha
        assert (ha.enabled, ha.member_id, ha.lease_ttl, ha.shards) == (True, "a", 10.0, 64)

    @pytest.mark.parametrize(("key", "value"), [("lease_ttl", 0.5), ("shards", 0), ("x", 1)])
    def test_bad_values_are_named(self, key: str, value: object, tmp_path: Path) -> None:
        assert f"ha.{key}" in _error({**_minimal(), "ha": {key: value}}, tmp_path)


class TestArtifacts:
    def test_object_storage_uri_is_taken(self) -> None:
        """registry.artifacts takes an s3:// (gs://, az://) URI as written."""
        data = {**_minimal(), "registry": {"artifacts": "s3://ml-models/registry"}}
        assert parse_config(data, where="t").registry.artifacts == "s3://ml-models/registry"

    def test_relative_directory_resolves_to_the_file(self, tmp_path: Path) -> None:
        """A relative local directory is relative to the config file, as home is."""
        file = tmp_path / "ok.yaml"
        file.write_text(yaml.safe_dump({**_minimal(), "registry": {"artifacts": "blobs"}}))
        assert load_config(file).registry.artifacts == str(tmp_path / "blobs")

    @pytest.mark.parametrize(
        ("uri", "said"),
        [
            ("s3://ml-models/a/../b", "a '..' segment is not allowed"),
            ("s3://AKIA:topsecret@ml-models/x", "credentials in the URI are refused"),
            ("ftp://host/x", "unsupported scheme 'ftp'"),
        ],
    )
    def test_bad_uri_is_named(self, uri: str, said: str, tmp_path: Path) -> None:
        """A refused URI fails config validation naming the file, the key and the rule,
        never echoing a credential."""
        message = _error({**_minimal(), "registry": {"artifacts": uri}}, tmp_path)
        assert message.startswith(f"{tmp_path / 'bad.yaml'}: registry.artifacts: ")
        assert said in message
        assert "topsecret" not in message

    @pytest.mark.s3
    def test_the_daemon_keeps_artifacts_there(self, s3_uri: str, tmp_path: Path) -> None:
        """The daemon's registry stores and verifies artifacts at registry.artifacts."""
        from controller.runtime.daemon import Daemon

        data = _minimal()
        data["registry"] = {"home": str(tmp_path / "home"), "artifacts": s3_uri}
        data["routers"]["table"]["options"]["path"] = str(tmp_path / "routes.json")
        data["sources"]["events"]["options"] = {"url": f"sqlite:///{tmp_path}/ingest.db"}
        daemon = Daemon.build(parse_config(data, where="t"))
        try:
            assert daemon.registry.artifacts.location == s3_uri
            mv = daemon.registry.register_model("fraud", {"w": 1})
            assert daemon.registry.get_model("fraud", version=str(mv.version)) == {"w": 1}
        finally:
            for store in daemon.ingest.values():
                store.close()
            daemon.store.close()
            daemon.registry.close()
