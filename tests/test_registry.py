"""The registries: typed facts per kind, one home for each fact, names listed without importing torch."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.data import DATASETS
from benchmark.models import BACKBONES
from benchmark.registry import BackboneInfo, DatasetInfo, Registry, StrategyInfo, shown_facts
from benchmark.strategies import STRATEGIES

ROOT = Path(__file__).resolve().parent.parent


def test_every_entry_has_the_typed_facts_of_its_kind() -> None:
    for registry, info_type in ((STRATEGIES, StrategyInfo), (BACKBONES, BackboneInfo), (DATASETS, DatasetInfo)):
        for entry in registry:
            assert isinstance(entry.info, info_type), entry.name
            assert entry.info.version >= 1, entry.name
    assert STRATEGIES.info("badge").needs == ("probs", "embeddings")
    assert BACKBONES.info("lenet").mc_dropout == {"conv": 0.25, "head": 0.5}
    assert DATASETS.info("cifar10").n_train == 50000


def test_register_rejects_facts_of_another_kind_and_bad_versions() -> None:
    registry: Registry = Registry("strategy", StrategyInfo)
    with pytest.raises(TypeError, match="StrategyInfo"):
        registry.register("x", "m:X", "summary", BackboneInfo(8))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="version must be a positive int"):
        registry.register("x", "m:X", "summary", StrategyInfo("plain", version=0))
    registry.register("x", "m:X", "summary", StrategyInfo("plain", ("probs",)))
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("x", "m:X", "summary", StrategyInfo("plain"))
    assert shown_facts(registry.info("x")) == "kind=plain, needs=('probs',), version=1"


def test_needs_are_declared_only_in_the_registry() -> None:
    declared = [f"{p.name}: {line.strip()}" for p in sorted((ROOT / "benchmark" / "strategies").glob("*.py"))
                if p.name != "__init__.py"
                for line in p.read_text().splitlines() if re.match(r"\s+needs\s*(:[^=]*)?=\s*\(", line)]
    assert declared == [], "declare a strategy's needs in benchmark/strategies/__init__.py only"
    for entry in STRATEGIES:
        assert entry.load().needs == entry.info.needs, entry.name  # classes read their registry entry


def test_strategy_declarations_drive_the_resolved_settings() -> None:
    from benchmark.config import CellConfig

    def training(strategy: str, **settings: object) -> object:
        return CellConfig.model_validate({"dataset": "digits", "backbone": "small_cnn", "strategy": strategy,
                                          "budget": {"initial": 10, "query": 10, "rounds": 1},
                                          "training": {"epochs": 10, **settings}}).training

    waal = training("waal")
    assert (waal.aux, waal.aux_weight, waal.epoch_length) == ("wasserstein", 2e-3, "pool")
    # the defaults come with the auxiliary module, also when another strategy trains it
    entropy = training("entropy", aux="wasserstein")
    assert (entropy.aux_weight, entropy.epoch_length) == (2e-3, "pool")
    assert training("lplgrad").aux_detach_epoch == 6  # LL4AL: 60 % of the epochs
    plain = training("entropy")
    assert (plain.aux, plain.aux_weight, plain.epoch_length, plain.aux_detach_epoch) == ("none", 1.0, "labeled", None)
    with pytest.raises(ValueError, match="strategy 'ceal' trains on its own pseudo-labels"):
        training("ceal", semi="label_propagation")


def test_listing_and_validating_never_import_torch() -> None:
    code = ("import sys; from benchmark.suite import load_suite; from benchmark.versions import fingerprints; "
            "load_suite('suites/quickstart.yaml'); fingerprints(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
