"""controller.cli: the modelreg command with the controller's verbs, run in-process."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from controller.cli import app
from registry import ModelRegistry

from .support import config as make_config
from .support import register

ROOT = Path(__file__).parents[2]


def _config_file(tmp_path: Path) -> Path:
    cfg = make_config(tmp_path, tmp_path / "routes.json", f"sqlite:///{tmp_path}/ingest.db")
    data = cfg.model_dump(mode="json", exclude={"source_file"})
    file = tmp_path / "daemon.yaml"
    file.write_text(yaml.safe_dump(data))
    return file


class TestCli:
    def test_config_check_ok_and_bad(self, tmp_path: Path) -> None:
        """A valid file prints ok; an invalid one exits 2 naming file and key."""
        runner = CliRunner()
        ok = runner.invoke(app, ["config", "check", str(ROOT / "config" / "daemon.yaml")])
        assert ok.exit_code == 0, ok.output
        assert "ok" in ok.output
        bad = tmp_path / "bad.yaml"
        bad.write_text("routers: {t: {kind: file, options: {path: x}}}\nwatch_interval: -1\n")
        result = runner.invoke(app, ["config", "check", str(bad)])
        assert result.exit_code == 2
        assert "watch_interval" in result.stderr

    def test_config_check_lists_every_error(self, tmp_path: Path) -> None:
        """Each problem gets its own line naming the file and key path."""
        bad = tmp_path / "bad.yaml"
        bad.write_text("watch_interval: -1\nbogus_key: 1\n")
        result = CliRunner().invoke(app, ["config", "check", str(bad)])
        assert result.exit_code == 2
        lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(lines) >= 2
        assert all(str(bad) in line for line in lines)
        assert any("bogus_key" in line for line in lines)
        assert any("watch_interval" in line for line in lines)

    def test_schema_is_published(self) -> None:
        """config/schema.json is the current JSON Schema of the config file."""
        result = CliRunner().invoke(app, ["config", "schema"])
        assert json.loads(result.output) == json.loads(
            (ROOT / "config" / "schema.json").read_text()
        )

    def test_rollout_direct(self, tmp_path: Path) -> None:
        """start, list, pause, explain and abort work on the database without a daemon."""
        file = _config_file(tmp_path)
        with ModelRegistry(home=tmp_path / "home") as registry:
            register(registry, tmp_path, "fraud", "1.0.0", "production")
            register(registry, tmp_path, "fraud", "1.1.0", "staging")
        runner = CliRunner()
        base = ["--config", str(file), "--direct"]
        started = runner.invoke(app, ["rollout", "start", "fraud", "1.1.0", *base])
        assert started.exit_code == 0, started.output
        listed = runner.invoke(app, ["rollout", "list", *base, "--json"])
        (row,) = json.loads(listed.stdout)
        assert (row["treatment"], row["phase"]) == ("v1.1.0", "pending")
        refused = runner.invoke(app, ["rollout", "pause", str(row["id"]), *base])
        assert refused.exit_code == 1
        assert "pending" in refused.stderr
        aborted = runner.invoke(app, ["rollout", "abort", str(row["id"]), *base])
        assert aborted.exit_code == 0
        assert "aborted" in aborted.stdout
        explained = runner.invoke(app, ["rollout", "explain", str(row["id"]), *base, "--json"])
        assert [d["action"] for d in json.loads(explained.stdout)] == ["rollback"]
        missing = runner.invoke(app, ["rollout", "start", "fraud", "9.9.9", *base])
        assert missing.exit_code == 1

    def test_every_command_but_the_daemon_takes_json(self) -> None:
        """The README says so: walk the whole command tree."""
        import typer

        missing = []

        def walk(command: object, path: list[str]) -> None:
            subcommands = getattr(command, "commands", None)
            if subcommands is not None:
                for name, sub in subcommands.items():
                    walk(sub, [*path, name])
                return
            options = {o for p in getattr(command, "params", []) for o in getattr(p, "opts", [])}
            if "--json" not in options and path != ["daemon"]:
                missing.append(" ".join(path))

        walk(typer.main.get_command(app), [])
        assert missing == []

    def test_config_check_json(self, tmp_path: Path) -> None:
        """One object either way; exit codes as without --json."""
        runner = CliRunner()
        ok = runner.invoke(app, ["config", "check", str(ROOT / "config" / "daemon.yaml"), "--json"])
        assert ok.exit_code == 0, ok.output
        body = json.loads(ok.stdout)
        assert (body["ok"], body["errors"]) == (True, [])
        assert body["models"]
        bad = tmp_path / "bad.yaml"
        bad.write_text("watch_interval: -1\n")
        result = runner.invoke(app, ["config", "check", str(bad), "--json"])
        assert result.exit_code == 2
        body = json.loads(result.stdout)
        assert body["ok"] is False
        assert any("watch_interval" in e for e in body["errors"])

    def test_rollout_status_reads_as_text_and_json(self, tmp_path: Path) -> None:
        """status prints labelled lines by default (the reason whole), JSON with --json;
        start and the operations take --json too; --direct keeps info logs off both
        streams, and a long reason in list is wrapped, not cut."""
        file = _config_file(tmp_path)
        with ModelRegistry(home=tmp_path / "home") as registry:
            register(registry, tmp_path, "fraud", "1.0.0", "production")
            register(registry, tmp_path, "fraud", "1.1.0", "staging")
        runner = CliRunner()
        base = ["--config", str(file), "--direct"]
        why = "checking the new feature pipeline against last week's traffic " * 3
        started = runner.invoke(
            app, ["rollout", "start", "fraud", "1.1.0", *base, "--reason", why, "--json"]
        )
        assert started.exit_code == 0, started.output
        rollout = json.loads(started.stdout)
        assert started.stderr == ""
        status = runner.invoke(app, ["rollout", "status", str(rollout["id"]), *base])
        assert status.exit_code == 0, status.output
        lines = status.stdout.splitlines()
        assert lines[0] == f"rollout {rollout['id']}: fraud v1.1.0 vs v1.0.0"
        assert "  phase      pending" in lines
        assert " ".join(status.stdout.split()).endswith(" ".join(why.split()))
        as_json = runner.invoke(app, ["rollout", "status", str(rollout["id"]), *base, "--json"])
        assert json.loads(as_json.stdout)["reason"] == why
        listed = runner.invoke(app, ["rollout", "list", *base])
        assert listed.stdout.count("traffic") == 3  # all of it, over several lines
        aborted = runner.invoke(app, ["rollout", "abort", str(rollout["id"]), *base, "--json"])
        assert json.loads(aborted.stdout)["phase"] == "aborted"
