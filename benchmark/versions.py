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
import ast
import functools
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.columns import PLUGIN_PREFIX
from benchmark.columns import VERSION_PREFIX as VERSION_PREFIX  # result columns: version.strategy, ...

# datasets given by path (benchmark.data.parse_spec); re-exported
from benchmark.dataset_versions import PARAMETRIC_DATASET_VERSIONS as PARAMETRIC_DATASET_VERSIONS

if TYPE_CHECKING:
    from benchmark.config import CellConfig
    from benchmark.plugins import Origin
    from benchmark.registry import Registry

# the AL loop's network side: the trainer (benchmark/training), the learner, the pool passes every strategy reads
# (strategies/pool_model.py) and the round loop (runner.py), with everything they import
# 2: split_batches merged a trailing singleton into the wrong slot (a sample trained twice per epoch, a batch lost)
TRAINER_VERSION = 2
TRAINER_ROOTS = ("benchmark.learner", "benchmark.runner", "benchmark.cell_state", "benchmark.strategies.pool_model")
# the detection side of the loop (benchmark/detection: detector training, mAP, box probabilities); its own
# component, so that detection changes never change classification cell ids (the trainer's closure stops there)
DETECTION_TRAINER_VERSION = 1
DETECTION_PACKAGE = "benchmark.detection"
# starting weights other than scratch (config.INIT_CHOICES; checkpoint:PATH is "checkpoint"); the one version of
# each method, also the key of its pre-training cache (benchmark/pretrain/cache.py)
# deepcluster 2: one shared k-means (benchmark/ops/kmeans.py, greedy k-means++ seeding) changed its pseudo-labels
# simsiam 2, deepcluster 3, rotation 2: the split_batches fix (see TRAINER_VERSION 2) changed their batches
INIT_VERSIONS: dict[str, int] = {"simsiam": 2, "deepcluster": 3, "rotation": 2, "imagenet": 1, "checkpoint": 1}

UNKNOWN = "unknown"  # the version of a component in results written before versions were recorded
ROOT = Path(__file__).resolve().parent.parent
FINGERPRINT_FILE = Path(__file__).resolve().parent / "component_fingerprints.json"

INIT_ROOTS: dict[str, tuple[str, ...]] = {
    "simsiam": ("benchmark.pretrain.simsiam",),
    "deepcluster": ("benchmark.pretrain.deepcluster",),
    "rotation": ("benchmark.pretrain.rotation",),
    "imagenet": ("benchmark.models.imagenet", "benchmark.pretrain.initial"),
    "checkpoint": ("benchmark.pretrain.checkpoint", "benchmark.pretrain.initial"),
}
# modules that cannot change a number: messages, files, locks, progress, suite expansion (whatever it changes is
# in the resolved configuration, hence the cell id), reports. Import closures stop at them.
NOT_COMPUTING = frozenset({
    "benchmark.errors", "benchmark.store", "benchmark.claims", "benchmark.progress", "benchmark.ops.locks",
    "benchmark.versions", "benchmark.suite", "benchmark.assumptions", "benchmark.published", "benchmark.report",
    "benchmark.cli", "benchmark.executors", "benchmark.status",
    "benchmark.data.fetch", "benchmark.data.cards", "benchmark.data.requirements", "benchmark.data.weights",
})


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
    if c.get("detection") is not None:  # a detection cell (benchmark.config.CellConfig.task)
        versions["detection_trainer"] = DETECTION_TRAINER_VERSION
    init = c.get("init", "scratch")
    if init != "scratch":
        versions["pretraining"] = INIT_VERSIONS[init_method(init)]
    return versions


def named_components(config: CellConfig | dict[str, Any]) -> list[tuple[str, Registry[Any, Any], str]]:
    """(role, registry, name) of each registered component a cell names, in the roles of
    :func:`component_versions` (a dataset given by path is no registry entry and is left out)."""
    from benchmark.data import DATASETS, parse_spec
    from benchmark.models import BACKBONES
    from benchmark.strategies import STRATEGIES, phase_strategies

    c = config if isinstance(config, dict) else config.canonical()
    roles: list[tuple[str, Registry[Any, Any], str]] = []
    if "strategy" in c:
        initial, rounds = phase_strategies(c["strategy"], c.get("initial_strategy"))
        roles += [("strategy", STRATEGIES, c["strategy"]), ("initial_strategy", STRATEGIES, initial),
                  ("rounds_strategy", STRATEGIES, rounds)]
    if "backbone" in c:
        roles.append(("backbone", BACKBONES, c["backbone"]))
    if "dataset" in c and parse_spec(c["dataset"]) is None:
        roles.append(("dataset", DATASETS, c["dataset"]))
    return roles


def component_origins(config: CellConfig | dict[str, Any]) -> dict[str, Origin]:
    """The plugins among the components a cell runs, by role: their distribution, version and sources enter
    the cell id and the rows (benchmark.plugins)."""
    return {role: origin for role, registry, name in named_components(config)
            if (origin := registry.entry(name).origin) is not None}


def plugin_identities(config: CellConfig | dict[str, Any]) -> dict[str, dict[str, str]]:
    return {role: origin.identity() for role, origin in component_origins(config).items()}


def plugin_columns(config: CellConfig | dict[str, Any]) -> dict[str, str]:
    """{'plugin.strategy': 'alb-example-plugin==0.1.0 sha256:...', ...} for the plugins a cell runs."""
    return {f"{PLUGIN_PREFIX}{role}": origin.column() for role, origin in component_origins(config).items()}


def version_columns(config: CellConfig | dict[str, Any]) -> dict[str, int]:
    """``component_versions`` as result columns: {'version.strategy': 1, ...}."""
    return {f"{VERSION_PREFIX}{k}": v for k, v in component_versions(config).items()}


# ---- fingerprints of the components' sources -------------------------------------------------


def _module_path(module: str) -> Path | None:
    """The source file of a module of ``benchmark`` (a package: its __init__.py), None for anything else."""
    if module != "benchmark" and not module.startswith("benchmark."):
        return None
    base = ROOT / module.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _excluded(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in NOT_COMPUTING)


@functools.cache
def module_imports(module: str) -> frozenset[str]:
    """The modules of ``benchmark`` that ``module`` imports, at its top and inside functions (what
    ``typing.TYPE_CHECKING`` guards never runs, so it is left out). ``from P import name`` names module
    P.name when that is a module, else P."""
    path = _module_path(module)
    if path is None:
        return frozenset()
    tree = ast.parse(path.read_text(), filename=str(path))
    type_only = {id(node) for branch in ast.walk(tree) if isinstance(branch, ast.If)
                 and "TYPE_CHECKING" in ast.unparse(branch.test) for node in ast.walk(branch)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if _module_path(sub) is not None else node.module)
    return frozenset(m for m in found if _module_path(m) is not None)


def import_closure(roots: Sequence[str], stop: Sequence[str] = ()) -> tuple[str, ...]:
    """The source files (relative to the repository root) of ``roots`` and every module of ``benchmark`` they
    import, directly or not, stopping at the modules that cannot change a number (NOT_COMPUTING) and at the
    packages in ``stop`` (components of their own)."""
    seen: set[str] = set()
    stack = [m for m in roots if _module_path(m) is not None]
    while stack:
        module = stack.pop()
        if module in seen:
            continue
        seen.add(module)
        stack.extend(m for m in module_imports(module) if m not in seen and not _excluded(m)
                     and not any(m == p or m.startswith(p + ".") for p in stop))
    return tuple(sorted({str(_module_path(m).relative_to(ROOT)) for m in seen}))  # type: ignore[union-attr]


def component_sources() -> dict[str, tuple[int, tuple[str, ...]]]:
    """component -> (version, its source files relative to the repository root: the import closure of the
    modules it runs)."""
    from benchmark.data import DATASETS
    from benchmark.models import BACKBONES
    from benchmark.strategies import STRATEGIES

    components: dict[str, tuple[int, tuple[str, ...]]] = {}
    for kind, registry in (("strategy", STRATEGIES), ("backbone", BACKBONES), ("dataset", DATASETS)):
        for entry in registry:
            if entry.origin is not None:  # a plugin: identified by its own sources (benchmark.plugins)
                continue
            components[f"{kind}:{entry.name}"] = (entry.info.version, import_closure([entry.module]))
    for kind, version in PARAMETRIC_DATASET_VERSIONS.items():
        roots = {"hf": "benchmark.data.hf", "coco_json": "benchmark.detection.coco_json"}.get(
            kind, "benchmark.data.image_sets")
        components[f"dataset:{kind}"] = (version, import_closure([roots]))
    trainer_roots = [*TRAINER_ROOTS, *(f"benchmark.training.{p.stem}"
                                       for p in sorted((ROOT / "benchmark" / "training").glob("*.py")))]
    components["trainer"] = (TRAINER_VERSION, import_closure(trainer_roots, stop=(DETECTION_PACKAGE,)))
    detection_roots = [f"{DETECTION_PACKAGE}.{p.stem}" for p in sorted((ROOT / "benchmark" / "detection").glob("*.py"))
                       if p.stem not in ("__init__", "voc", "coco_json", "digits_boxes", "models")]
    components["detection_trainer"] = (DETECTION_TRAINER_VERSION, import_closure(detection_roots))
    for method, version in INIT_VERSIONS.items():
        components[f"pretraining:{method}"] = (version, import_closure(INIT_ROOTS[method]))
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
    from benchmark.files import atomic_write

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
