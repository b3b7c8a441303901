"""A bit flips in the candidate's stored artifact while its canary runs.

The evidence goes on to say "promote" (the candidate is better), but what was measured
can no longer be served as registered: the daemon re-hashes the artifact when it is
about to promote, and rolls back instead with ``Cause.CORRUPT_ARTIFACT``. Production
stays where it was, the candidate is archived, traffic goes back to production. The
invariant check names the damaged artifact until the blob is put back (as a restore
from a backup would), and then every invariant holds.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from monitors.testing import wait_until
from registry import ModelRegistry
from tests.controller.stack import TERMINAL, build_stack
from tests.invariants import violations

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]


@pytest.mark.timeout(300)
def test_a_flipped_bit_in_the_candidate_rolls_it_back_instead_of_promoting(
    tmp_path: Path,
) -> None:
    stack = build_stack(tmp_path, strategy={"kind": "canary", "steps": [50, 100],
                                            "step_duration": 1},
                        settle=0, min_samples=50)  # fmt: skip
    stack.register("1.0.0", "production")
    stack.start_daemon()
    stack.start_workload()
    try:
        stack.register("1.1.0")
        assert wait_until(lambda: stack.rollout("v1.1.0") is not None, timeout=30)
        with ModelRegistry(home=tmp_path, actor="faults") as registry:
            digest = registry.get_model_version("fraud", "v1.1.0").artifact_digest
            assert digest is not None
            blob = registry.artifacts.path_for(digest)
        good = blob.read_bytes()
        flipped = bytearray(good)
        flipped[0] ^= 0x10
        blob.chmod(0o644)
        blob.write_bytes(bytes(flipped))  # the disk rots under the running canary
        assert wait_until(lambda: (stack.rollout("v1.1.0") or {}).get("phase") in TERMINAL,
                          timeout=120), stack.log_tail()  # fmt: skip
        rollout = stack.rollout("v1.1.0")
        assert rollout is not None
        assert rollout["phase"] == "rolled_back", rollout
        assert "is corrupted" in rollout["reason"], rollout
        explained = stack.get(f"/v1/rollouts/{rollout['id']}/explain", limit=1000)
        assert not [d for d in explained["decisions"] if d["action"] == "promote"]
        metrics = httpx.get(f"{stack.url}/metrics", timeout=5).text
        assert 'modelreg_controller_rollbacks_total{reason="corrupt_artifact"} 1.0' in metrics
    finally:
        stack.stop()
    with ModelRegistry(home=tmp_path, actor="faults") as registry:
        assert registry.resolve("fraud").version.__str__() == "v1.0.0"
        assert registry.get_model_version("fraud", "v1.1.0").stage == "archived"

    found = violations(stack.db_url, home=tmp_path, read_route=stack.read_route, settle=2)
    assert len(found) == 1, found
    assert "fraud v1.1.0: artifact" in found[0], found
    blob.write_bytes(good)  # put back from a backup
    stack.check_invariants()
