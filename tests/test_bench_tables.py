"""The README's benchmark tables are what ``bench/readme_tables.py`` renders from
``bench/results.json``: a figure edited by hand, or a run not rendered, fails here."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module(name: str) -> ModuleType:
    bench = str(ROOT / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)  # the scripts import their neighbour bench/figures.py
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_readme_tables_are_rendered_from_the_results() -> None:
    tables = _module("readme_tables")
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    readme = (ROOT / "README.md").read_text()
    assert tables.replace(readme, tables.render(results)) == readme, (
        "README.md's benchmark tables differ from bench/results.json: run "
        "python bench/readme_tables.py"
    )


def test_the_results_are_a_full_run_of_every_benchmark() -> None:
    run_all = _module("run_all")
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    assert list(results["benches"]) == [b.name for b in run_all.BENCHES]
    for name, entry in results["benches"].items():
        assert entry["mode"] == "full", f"{name}: the README reports full runs"
        assert "failed" not in entry, f"{name}: {entry.get('failed')}"
        for f in entry.get("figures", []):
            assert {"key", "what", "value", "unit", "baseline", "ratio", "target", "met"} <= set(f)


def test_a_hand_edit_is_caught() -> None:
    tables = _module("readme_tables")
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    rendered = tables.render(results)
    first = next(f for e in results["benches"].values() for f in e.get("figures", []))
    first["value"] = first["value"] * 2 + 1
    assert tables.render(results) != rendered


@pytest.mark.parametrize(
    ("target", "measured", "met"),
    [("<= 1.3", 1.3, True), ("<= 1.3", 1.31, False), (">= 0.6", 0.59, False), ("> 2", 2.5, True)],
)
def test_targets_are_judged_as_written(target: str, measured: float, met: bool) -> None:
    figures = _module("figures")
    assert figures.figure("k", "w", measured, "x", target=target, target_on="value")["met"] is met
    with pytest.raises(ValueError, match="not a comparison"):
        figures.figure("k", "w", 1.0, "x", target="about 2", target_on="value")
