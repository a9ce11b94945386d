"""Component versions: what a cell's results depend on besides its configuration.

Every strategy, backbone and dataset loader has a ``version`` in its registry entry
(benchmark/strategies, benchmark/models, benchmark/data); the trainer and the
initial-weight methods (pre-training, ImageNet weights, checkpoints) have theirs
here. The versions a cell uses enter its id (:meth:`benchmark.config.CellConfig.cell_id`)
and every result row (``version.<component>`` columns), so that results of changed
code are never mistaken for, ranked with or compared against old ones.

Bump a component's version when its behaviour changes. ``component_fingerprints.json``
records each component's version and the sha256 of its source files;
tests/test_versions.py fails when a source changed without the file being updated, and
``python -m benchmark.versions --update`` rewrites it (after bumping what changed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmark.config import CellConfig

# the supervised / semi-supervised trainer: benchmark/training/*.py and the shared ops it computes with
TRAINER_VERSION = 1
# test metrics (evaluate) and label propagation's kNN graph + conjugate gradient (training.semi)
TRAINER_OPS = ("benchmark/ops/metrics.py", "benchmark/ops/graph.py")
# starting weights other than scratch (config.INIT_CHOICES; checkpoint:PATH is "checkpoint")
# deepcluster 2: one shared k-means (benchmark/ops/kmeans.py, greedy k-means++ seeding) changed its pseudo-labels
INIT_VERSIONS: dict[str, int] = {"simsiam": 1, "deepcluster": 2, "rotation": 1, "imagenet": 1, "checkpoint": 1}
# datasets given by path (benchmark.data.parse_spec)
PARAMETRIC_DATASET_VERSIONS: dict[str, int] = {"npz": 1, "image_folder": 1}

VERSION_PREFIX = "version."  # result columns: version.strategy, version.backbone, ...
UNKNOWN = "unknown"  # the version of a component in results written before versions were recorded
ROOT = Path(__file__).resolve().parent.parent
FINGERPRINT_FILE = Path(__file__).resolve().parent / "component_fingerprints.json"

_PRETRAIN_SHARED = ("benchmark/pretrain/common.py", "benchmark/pretrain/settings.py")
INIT_SOURCES: dict[str, tuple[str, ...]] = {
    "simsiam": ("benchmark/pretrain/simsiam.py", "benchmark/pretrain/blur.py", *_PRETRAIN_SHARED),
    "deepcluster": ("benchmark/pretrain/deepcluster.py", "benchmark/pretrain/kmeans.py", "benchmark/ops/kmeans.py",
                    *_PRETRAIN_SHARED),
    "rotation": ("benchmark/pretrain/rotation.py", *_PRETRAIN_SHARED),
    "imagenet": ("benchmark/models/imagenet.py", "benchmark/pretrain/initial.py"),
    "checkpoint": ("benchmark/pretrain/checkpoint.py", "benchmark/pretrain/initial.py"),
}


def init_method(init: str) -> str:
    """The versioned method of an ``init`` value ('checkpoint:PATH' -> 'checkpoint')."""
    return "checkpoint" if init.startswith("checkpoint:") else init


def dataset_version(spec: str) -> int:
    from benchmark.data import DATASETS, parse_spec

    parametric = parse_spec(spec)
    if parametric is not None:
        return PARAMETRIC_DATASET_VERSIONS[parametric.kind]
    return DATASETS.info(spec).version


def component_versions(config: CellConfig | dict[str, Any]) -> dict[str, int]:
    """The versions of the components a cell runs: its strategy (a schedule: also its strategy for the
    query rounds), the strategy of its initial set, backbone, dataset, the trainer and, when ``init`` is
    not scratch, the initial-weight method. ``config``: a resolved CellConfig or its canonical dict (of a
    partial dict, the versions of the components it names, and the trainer's)."""
    from benchmark.models import BACKBONES
    from benchmark.strategies import STRATEGIES, phase_strategies

    c = config if isinstance(config, dict) else config.canonical()
    versions: dict[str, int] = {}
    if "strategy" in c:
        initial, rounds = phase_strategies(c["strategy"], c.get("initial_strategy"))
        versions["strategy"] = STRATEGIES.info(c["strategy"]).version
        versions["initial_strategy"] = STRATEGIES.info(initial).version
        if rounds != c["strategy"]:
            versions["rounds_strategy"] = STRATEGIES.info(rounds).version
    if "backbone" in c:
        versions["backbone"] = BACKBONES.info(c["backbone"]).version
    if "dataset" in c:
        versions["dataset"] = dataset_version(c["dataset"])
    versions["trainer"] = TRAINER_VERSION
    init = c.get("init", "scratch")
    if init != "scratch":
        versions["pretraining"] = INIT_VERSIONS[init_method(init)]
    return versions


def version_columns(config: CellConfig | dict[str, Any]) -> dict[str, int]:
    """``component_versions`` as result columns: {'version.strategy': 1, ...}."""
    return {f"{VERSION_PREFIX}{k}": v for k, v in component_versions(config).items()}


# ---- fingerprints of the components' sources -------------------------------------------------


def _module_file(module: str) -> str:
    return module.replace(".", "/") + ".py"


def component_sources() -> dict[str, tuple[int, tuple[str, ...]]]:
    """component -> (version, its source files relative to the repository root)."""
    from benchmark.data import DATASETS
    from benchmark.models import BACKBONES
    from benchmark.strategies import STRATEGIES

    components: dict[str, tuple[int, tuple[str, ...]]] = {}
    for kind, registry in (("strategy", STRATEGIES), ("backbone", BACKBONES), ("dataset", DATASETS)):
        for entry in registry:
            components[f"{kind}:{entry.name}"] = (entry.info.version, (_module_file(entry.module),))
    for kind, version in PARAMETRIC_DATASET_VERSIONS.items():
        components[f"dataset:{kind}"] = (version, ("benchmark/data/image_sets.py",))
    trainer = tuple(sorted([*(str(p.relative_to(ROOT)) for p in (ROOT / "benchmark" / "training").glob("*.py")),
                            *TRAINER_OPS]))
    components["trainer"] = (TRAINER_VERSION, trainer)
    for method, version in INIT_VERSIONS.items():
        components[f"pretraining:{method}"] = (version, INIT_SOURCES[method])
    return components


def source_sha256(files: Sequence[str]) -> str:
    """sha256 over the files' relative paths and contents (a missing file counts as empty)."""
    digest = hashlib.sha256()
    for name in sorted(set(files)):
        path = ROOT / name
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"")
        digest.update(b"\0")
    return digest.hexdigest()


def fingerprints() -> dict[str, dict[str, Any]]:
    """component -> {version, files, sha256} of the current source tree."""
    return {name: {"version": version, "files": list(files), "sha256": source_sha256(files)}
            for name, (version, files) in sorted(component_sources().items())}


def load_fingerprints(path: Path = FINGERPRINT_FILE) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    data: dict[str, dict[str, Any]] = json.loads(path.read_text())["components"]
    return data


def stale_components(committed: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """One line per component whose version or source fingerprint differs from the committed file."""
    committed = load_fingerprints() if committed is None else committed
    current = fingerprints()
    problems = []
    for name, now in current.items():
        then = committed.get(name)
        if then is None:
            problems.append(f"{name}: new component (version {now['version']}), not in the fingerprint file")
        elif then["sha256"] != now["sha256"] or then.get("files") != now["files"]:
            problems.append(f"{name}: its source ({', '.join(now['files'])}) changed since version "
                            f"{then['version']} was recorded")
        elif then["version"] != now["version"]:
            problems.append(f"{name}: version {now['version']}, the fingerprint file has {then['version']}")
    problems += [f"{name}: no longer exists" for name in sorted(set(committed) - set(current))]
    return problems


def write_fingerprints(path: Path = FINGERPRINT_FILE) -> None:
    from benchmark.store import atomic_write

    text = json.dumps({"about": "component versions and the sha256 of their sources; regenerate with "
                       "'python -m benchmark.versions --update' after bumping the version of every component "
                       "whose behaviour changed", "components": fingerprints()}, indent=1, sort_keys=True)
    atomic_write(path, lambda tmp: tmp.write_text(text + "\n"))


STALE_HINT = ("bump the component's version if its behaviour changed (registry entry: benchmark/strategies, "
              "benchmark/models, benchmark/data; trainer and initial weights: benchmark/versions.py), then run "
              "`python -m benchmark.versions --update`")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.versions",
                                     description="check or rewrite benchmark/component_fingerprints.json")
    parser.add_argument("--update", action="store_true", help="rewrite the fingerprint file from the sources")
    args = parser.parse_args(argv)
    if args.update:
        write_fingerprints()
        print(f"{FINGERPRINT_FILE}: {len(fingerprints())} components")
        return 0
    problems = stale_components()
    for line in problems:
        print(line)
    if problems:
        print(STALE_HINT)
        return 1
    print("component fingerprints are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
