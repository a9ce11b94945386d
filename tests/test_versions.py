"""Component versions: fingerprints of their sources, their place in cell ids, result rows, reports and checks."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd
import pytest

from benchmark import versions
from benchmark.config import CellConfig
from benchmark.report.frame import with_labels
from benchmark.report.references import Reference, compare
from benchmark.strategies import STRATEGIES

CELL = {"dataset": "digits", "backbone": "small_cnn", "strategy": "entropy",
        "budget": {"initial": 10, "query": 10, "rounds": 1}}


def test_component_sources_match_the_committed_fingerprints() -> None:
    stale = versions.stale_components()
    assert not stale, "\n".join([*stale, versions.STALE_HINT])


def test_a_changed_source_is_reported_with_what_to_do(tmp_path: Any) -> None:
    committed = versions.fingerprints()
    committed["strategy:entropy"] = {**committed["strategy:entropy"], "sha256": "0" * 64}
    del committed["trainer"]
    committed["strategy:gone"] = {"version": 1, "files": [], "sha256": ""}
    stale = versions.stale_components(committed)
    assert any(line.startswith("strategy:entropy: its source (") and "benchmark/strategies/uncertainty.py" in line
               and "changed" in line for line in stale)
    assert f"trainer: new component (version {versions.TRAINER_VERSION}), not in the fingerprint file" in stale
    assert "strategy:gone: no longer exists" in stale
    assert "bump the component's version" in versions.STALE_HINT
    assert "python -m benchmark.versions --update" in versions.STALE_HINT
    target = tmp_path / "fingerprints.json"
    versions.write_fingerprints(target)
    assert versions.stale_components(versions.load_fingerprints(target)) == []


def test_every_component_has_a_positive_version_and_existing_sources() -> None:
    for name, (version, files) in versions.component_sources().items():
        assert isinstance(version, int) and version >= 1, name
        assert files and all((versions.ROOT / f).is_file() for f in files), name


def _bumped(monkeypatch: pytest.MonkeyPatch, registry: Any, name: str) -> None:
    entry = registry.entry(name)
    bumped = dataclasses.replace(entry.info, version=entry.info.version + 1)
    monkeypatch.setitem(registry._entries, name, dataclasses.replace(entry, info=bumped))


def test_the_versions_of_the_components_a_cell_uses_enter_its_id(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmark.data import DATASETS
    from benchmark.models import BACKBONES

    cell = CellConfig.model_validate(CELL)
    assert versions.component_versions(cell) == {"strategy": 1, "initial_strategy": 1, "backbone": 1,
                                                 "dataset": 1, "trainer": versions.TRAINER_VERSION}
    base = cell.cell_id()
    for registry, name in ((STRATEGIES, "entropy"), (STRATEGIES, "random"), (BACKBONES, "small_cnn"),
                           (DATASETS, "digits")):
        with monkeypatch.context() as m:
            _bumped(m, registry, name)
            assert cell.cell_id() != base, name
    _bumped(monkeypatch, STRATEGIES, "margin")  # a strategy the cell does not use
    assert cell.cell_id() == base
    monkeypatch.setattr(versions, "TRAINER_VERSION", versions.TRAINER_VERSION + 1)
    assert cell.cell_id() != base


def test_pre_training_and_a_schedules_rounds_strategy_have_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    simsiam = CellConfig.model_validate({**CELL, "init": "simsiam"})
    assert versions.component_versions(simsiam)["pretraining"] == versions.INIT_VERSIONS["simsiam"]
    base = simsiam.cell_id()
    monkeypatch.setitem(versions.INIT_VERSIONS, "simsiam", versions.INIT_VERSIONS["simsiam"] + 1)
    assert simsiam.cell_id() != base
    assert "pretraining" not in versions.component_versions(CellConfig.model_validate(CELL))
    schedule = versions.component_versions(CellConfig.model_validate({**CELL, "strategy": "hclc"}))
    assert schedule["rounds_strategy"] == 1 and schedule["initial_strategy"] == 1
    assert versions.version_columns(CellConfig.model_validate(CELL))["version.trainer"] == versions.TRAINER_VERSION


def test_fingerprints_cover_the_shared_code_components_run() -> None:
    """Issue 20.3: the files a component computes with, found from its imports, not listed by hand."""
    sources = {name: set(files) for name, (_, files) in versions.component_sources().items()}
    for name in ("strategy:kmeans", "strategy:typiclust", "strategy:probcover"):
        assert "benchmark/ops/kmeans.py" in sources[name], name
    assert "benchmark/strategies/base.py" in sources["strategy:entropy"]
    assert "benchmark/ops/distances.py" in sources["strategy:coreset"]
    assert "benchmark/models/base.py" in sources["backbone:small_cnn"]
    for shared in ("benchmark/strategies/pool_model.py", "benchmark/data/views.py", "benchmark/models/base.py",
                   "benchmark/training/loop.py", "benchmark/runner.py", "benchmark/ops/metrics.py"):
        assert shared in sources["trainer"], shared
    assert "benchmark/training/loop.py" in sources["pretraining:deepcluster"]
    infrastructure = [f for files in sources.values() for f in files if f == "benchmark/store.py" or "/report/" in f]
    assert not infrastructure


def test_import_closure_follows_function_local_imports_and_skips_type_checking(tmp_path: Any) -> None:
    imports = versions.module_imports("benchmark.strategies.base")
    assert "benchmark.strategies" in imports  # imported inside a method
    assert "benchmark.strategies.pool_model" not in imports  # only under TYPE_CHECKING


def _frame(trainer: Any = 1, entropy_version: Any = 1, columns: bool = True) -> pd.DataFrame:
    """Finished rounds of random and entropy, 2 seeds x 2 rounds, as the store writes them."""
    rows = []
    for strategy in ("random", "entropy"):
        for seed in (0, 1):
            for r in (0, 1):
                row: dict[str, Any] = {
                    "suite": "s", "cell_id": f"{strategy}{seed}{trainer}{entropy_version}", "dataset": "digits",
                    "backbone": "small_cnn", "strategy": strategy, "initial_strategy": "random", "seed": seed,
                    "init": "scratch", "training.start": "warm", "round": r, "n_labeled": 10 * (r + 1),
                    "accuracy": 0.5 + 0.1 * r + 0.01 * seed}
                if columns:
                    row.update({"version.strategy": entropy_version if strategy == "entropy" else 1,
                                "version.initial_strategy": 1, "version.backbone": 1, "version.dataset": 1,
                                "version.trainer": trainer})
                rows.append(row)
    return pd.DataFrame(rows)


def test_a_board_never_mixes_component_versions() -> None:
    frame = with_labels(pd.concat([_frame(trainer=1), _frame(trainer=2)], ignore_index=True))
    protocols = list(dict.fromkeys(frame["protocol"]))
    assert len(protocols) == 2
    assert {p.versions() for p in protocols} == {"backbone v1, dataset v1, trainer v1",
                                                 "backbone v1, dataset v1, trainer v2"}
    strategies = with_labels(pd.concat([_frame(), _frame(entropy_version=2)], ignore_index=True))
    assert len(set(strategies["protocol"])) == 1
    assert set(strategies["strategy_label"]) == {"random", "entropy [strategy v1]", "entropy [strategy v2]"}
    assert set(with_labels(_frame())["strategy_label"]) == {"random", "entropy"}  # one version: plain labels


def test_results_without_version_columns_load_with_unknown_versions() -> None:
    old = with_labels(_frame(columns=False))
    assert set(old["version.trainer"]) == {"unknown"} and set(old["version.strategy"]) == {"unknown"}
    [protocol] = set(old["protocol"])
    assert protocol.versions() == ("backbone version unknown, dataset version unknown, "
                                   "trainer version unknown")
    mixed = with_labels(pd.concat([_frame(columns=False), _frame()], ignore_index=True))
    assert len(set(mixed["protocol"])) == 2  # old results are never ranked with versioned ones


def _baseline_entry(frame: pd.DataFrame, **setting: Any) -> Reference:
    final = frame[(frame["strategy"] == "entropy") & (frame["round"] == 1)]
    return Reference("b", "digits", "small_cnn", "entropy", {"training.start": "warm", **setting}, None,
                     "accuracy", float(final["accuracy"].mean()), 0.01, 2, "baseline s")


def test_check_compares_only_cells_of_the_baselines_component_versions() -> None:
    from benchmark.report.references import baseline_references

    frame = with_labels(_frame())
    [saved] = [r for r in baseline_references(frame, "s") if r.strategy == "entropy" and r.n_labeled == 20]
    assert {k: v for k, v in saved.setting.items() if k.startswith("version.")} == {
        "version.strategy": 1, "version.initial_strategy": 1, "version.backbone": 1, "version.dataset": 1,
        "version.trainer": 1}
    [same] = compare(saved, frame, 0.01, 2.0)
    assert same.status == "pass"
    assert same.versions == "strategy v1, initial_strategy v1, backbone v1, dataset v1, trainer v1"
    [other] = compare(_baseline_entry(frame, **{"version.trainer": 2}), frame, 0.01, 2.0)
    assert other.status == "not comparable"
    assert other.reason == ("component versions differ: trainer is v2 in the baseline, v1 in our results")
    [strategy] = compare(_baseline_entry(frame, **{"version.strategy": 3}), frame, 0.01, 2.0)
    assert strategy.reason.startswith("component versions differ: strategy is v3")
    old = with_labels(_frame(columns=False))
    [unknown] = compare(_baseline_entry(old, **{"version.trainer": 1}), old, 0.01, 2.0)
    assert unknown.reason == "component versions differ: trainer is v1 in the baseline, unknown in our results"
    # a baseline saved before versions were recorded (and a published number) has none: compared as before
    [unversioned] = compare(_baseline_entry(frame), frame, 0.01, 2.0)
    assert unversioned.status == "pass"
