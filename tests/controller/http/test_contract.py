"""The live daemon keeps its OpenAPI contract: schemathesis, every check, both ways.

schemathesis (PyPI, in its own virtualenv ``.venv-schemathesis`` that
tests/services.sh installs) generates requests from the daemon's own
``/openapi.json`` (positive and negative, every parameter and body, undeclared
methods, a stateful phase) and checks each answer: no 5xx, every status and content
type documented, bodies matching their schema, schema-valid input accepted and
invalid input refused, ``Allow`` on 405s. Run against a daemon with tokens (with an
all-roles token, and with none: every route but the health ones is a documented
401) and one without. Bounded examples and a fixed seed, so a run is repeatable.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.controller.daemon_proc import alert_stack
from tests.needs import unavailable

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
ST = ROOT / ".venv-schemathesis" / "bin" / "st"


def _schemathesis(spec: Path, url: str, headers: dict[str, str], examples: int) -> None:
    if not ST.exists():
        unavailable(f"{ST} is missing (tests/services.sh installs schemathesis)")
    command = [str(ST), "run", str(spec), "--url", url, "--checks", "all",
               "--max-examples", str(examples), "--seed", "1", "--no-color"]  # fmt: skip
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout


@pytest.mark.parametrize("tokens", [True, False], ids=["tokens", "open"])
def test_the_daemon_keeps_its_openapi_contract(tmp_path: Path, tokens: bool) -> None:
    daemon = alert_stack(tmp_path)
    if not tokens:
        data = yaml.safe_load(daemon.config.read_text())
        del data["server"]["tokens_file"]
        daemon.config.write_text(yaml.safe_dump(data))
    daemon.start()
    try:
        auth = {"Authorization": f"Bearer {daemon.admin_token}"}
        spec = tmp_path / "openapi.json"
        answer = httpx.get(f"{daemon.url}/openapi.json", headers=auth, timeout=10)
        assert answer.status_code == 200
        spec.write_bytes(answer.content)
        # Without tokens the routes behave as with the all-roles token: fewer examples.
        _schemathesis(spec, daemon.url, auth if tokens else {}, examples=30 if tokens else 15)
        if tokens:  # no token: every guarded route answers its documented 401
            _schemathesis(spec, daemon.url, {}, examples=10)
        assert daemon.process is not None
        assert daemon.process.poll() is None, daemon.log_tail()
    finally:
        daemon.stop()
