"""``config check`` validates what the daemon loads, as the daemon would: the tokens
file, the config's own bytes, and every path it will write (directories outside the
daemon's home must exist; an existing registry file must be one)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from controller.cli import app
from controller.config import load_config
from controller.errors import ConfigError
from controller.http.auth import hash_token
from controller.runtime.daemon import Daemon

ROOT = Path(__file__).parents[2]


def _config(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load((ROOT / "config" / "daemon.yaml").read_text())
    data["registry"]["home"] = str(tmp_path / "home")
    data["sources"]["ingest"]["options"]["url"] = f"sqlite:///{tmp_path}/home/ingest.db"
    data["routers"]["table"]["options"]["path"] = str(tmp_path / "home" / "routes.json")
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    file = tmp_path / "daemon.yaml"
    file.write_text(yaml.safe_dump(data))
    return file


def _check(file: Path) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, ["config", "check", str(file)])
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    return result.exit_code, lines


def _tokens(tmp_path: Path, entries: object) -> str:
    file = tmp_path / "tokens.yaml"
    file.write_text(yaml.safe_dump({"tokens": entries}))
    return str(file)


H1, H2 = hash_token("mrt_" + "a" * 40), hash_token("mrt_" + "b" * 40)


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (None, "cannot read tokens file: No such file or directory"),
        ([{"identity": "a", "roles": ["reader"], "hash": "nothex"}], "tokens[0].hash"),
        ([{"identity": "a", "roles": ["reader"], "hash": H1},
          {"identity": "a", "roles": ["deployer"], "hash": H2}],
         "tokens[1].identity: 'a' is also tokens[0]"),
        ([{"identity": "a", "roles": ["sudo"], "hash": H1}], "tokens[0].roles"),
    ],
    ids=["missing", "malformed hash", "duplicate identity", "unknown role"],
)  # fmt: skip
def test_a_bad_tokens_file_fails_the_check(tmp_path: Path, tokens: object, expected: str) -> None:
    path = _tokens(tmp_path, tokens) if tokens is not None else str(tmp_path / "absent.yaml")
    code, lines = _check(_config(tmp_path, server__tokens_file=path))
    assert code == 2
    assert len(lines) == 1, lines
    assert "server.tokens_file" in lines[0]
    assert expected in lines[0]


def test_a_good_tokens_file_passes(tmp_path: Path) -> None:
    path = _tokens(tmp_path, [{"identity": "a", "roles": ["reader", "deployer"], "hash": H1}])
    assert _check(_config(tmp_path, server__tokens_file=path))[0] == 0


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe\x00\x01binary", b"registry:\n  home: \xe9t\xe9\n"],
    ids=["binary", "latin-1"],
)
def test_a_config_that_is_not_utf8_text_is_exit_2(tmp_path: Path, content: bytes) -> None:
    file = tmp_path / "daemon.yaml"
    file.write_bytes(content)
    code, lines = _check(file)
    assert code == 2
    assert lines == [lines[0]]
    assert "not UTF-8 text" in lines[0]


@pytest.mark.parametrize("key", ["sources__ingest__options__url", "registry__url"])
def test_a_path_in_a_missing_directory_fails_the_check_and_the_daemon(
    tmp_path: Path, key: str
) -> None:
    """Outside its home the daemon makes no directory: the check says so, the daemon
    refuses with the same line before it opens anything, and nothing is created."""
    missing = tmp_path / "nowhere" / "deeper"
    file = _config(tmp_path, **{key: f"sqlite:///{missing}/x.db"})
    code, lines = _check(file)
    assert code == 2
    assert any(f"directory {missing} does not exist" in line for line in lines), lines
    with pytest.raises(ConfigError, match="does not exist"):
        Daemon.build(load_config(file))
    assert not (tmp_path / "nowhere").exists()
    assert not (tmp_path / "home").exists()


def test_paths_inside_the_home_are_the_daemons_own(tmp_path: Path) -> None:
    inside = f"sqlite:///{tmp_path}/home/data/ingest.db"
    assert _check(_config(tmp_path, sources__ingest__options__url=inside))[0] == 0


def test_a_routers_output_is_its_own_and_a_blocked_one_is_a_warning(tmp_path: Path) -> None:
    """The file router makes its directory (a failure is the router's, retried); a file
    in the way is named as a warning, for this host."""
    new_dir = _config(tmp_path, routers__table__options__path=str(tmp_path / "r" / "x.json"))
    assert _check(new_dir)[0] == 0
    (tmp_path / "blocked").write_text("a file where a directory should be")
    blocked = _config(tmp_path, routers__table__options__path=str(tmp_path / "blocked" / "x.json"))
    result = CliRunner().invoke(app, ["config", "check", str(blocked)])
    assert result.exit_code == 0
    assert "blocked is not a directory (here" in result.stderr


def test_an_unusable_registry_file_fails_the_check(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "registry.db").write_bytes(b"")
    code, lines = _check(_config(tmp_path))
    assert code == 2
    assert "registry.url" in lines[0]
    assert "is an empty file, not a modelreg registry" in lines[0]
