"""Strategies, backbones and datasets from outside alb: the one contract they are declared through.

A component is a *declaration*: where its object lives (``"module:attribute"``), a one-line summary, and its
static facts (:class:`~benchmark.registry.StrategyInfo`, :class:`~benchmark.registry.BackboneInfo`,
:class:`~benchmark.registry.DatasetInfo`, each with a ``version``). alb's own components are declared this way
in ``benchmark/strategies``, ``benchmark/models`` and ``benchmark/data``; another package declares its own in
two ways:

- an entry point in its ``pyproject.toml``, group ``alb.strategies``, ``alb.backbones`` or ``alb.datasets``,
  named as suites will name the component and pointing at a :class:`Declaration` in a module that imports
  nothing heavy (so listing, validating suites and skipping cached cells import no torch)::

      [project.entry-points."alb.strategies"]
      top2_ratio = "alb_example_plugin.declarations:TOP2_RATIO"

- a suite names the object directly, ``strategy: my_al.strategies:TypicalMargin``; the object then carries its
  facts as ``alb_info`` (its docstring's first line is the summary), or is itself a :class:`Declaration`.

What the object must be: a strategy, a subclass of :class:`benchmark.strategies.base.Strategy` overriding
``select(ctx, budget)``; a backbone, a callable ``(num_classes=, in_channels=)`` returning a
:class:`benchmark.models.base.Backbone`; a dataset, a callable ``(data_dir)`` returning a
:class:`benchmark.data.base.ImageDataset` with the declared number of images.

Which plugins a suite's cells run is checked before they start by :func:`benchmark.plugin_check.check_cells`.
A plugin's identity (:class:`Origin`: its distribution, version and the sha256 of its package's sources)
enters the id of every cell that uses it and its result rows (``plugin.strategy``, ...): editing a plugin never
serves stale cells, and two plugins of one name never share a board.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.columns import PLUGIN_PREFIX as PLUGIN_PREFIX  # result columns: plugin.strategy, ...
from benchmark.component_info import TASKS, BackboneInfo, DatasetInfo, StrategyInfo
from benchmark.errors import ConfigError

ENTRY_POINT_GROUPS = {"strategy": "alb.strategies", "backbone": "alb.backbones", "dataset": "alb.datasets"}
# what a strategy may read in a round (benchmark.strategies.base.SelectionContext and the runner provide these)
KNOWN_NEEDS = frozenset({"probs", "embeddings", "mc_dropout", "network", "images", "labels", "pseudo_labels",
                         "loss_prediction", "discriminator", "wasserstein"})
STRATEGY_KINDS = ("plain", "schedule", "initial")
REFERENCE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")

Info = StrategyInfo | BackboneInfo | DatasetInfo


@dataclass(frozen=True)
class Declaration:
    """A component: ``target`` is ``"module:attribute"`` of its object, ``info`` its static facts."""

    target: str
    summary: str
    info: Info


@dataclass(frozen=True)
class Origin:
    """Where a plugin comes from: its distribution and version (``""`` when its package is not installed as
    one, e.g. a module on PYTHONPATH) and the top-level package or module whose sources identify it."""

    distribution: str
    version: str
    package: str

    @property
    def sha256(self) -> str:
        return package_sha256(self.package)

    def identity(self) -> dict[str, str]:
        return {"distribution": self.distribution, "version": self.version, "sha256": self.sha256}

    def label(self) -> str:
        """'alb-example-plugin 0.1.0, sources sha256 1a2b3c4d5e6f'."""
        installed = f"{self.distribution} {self.version}" if self.distribution else f"module {self.package}"
        try:
            return f"{installed}, sources sha256 {self.sha256[:12]}"
        except ConfigError:
            return f"{installed}, sources not found"

    def column(self) -> str:
        """The value of the plugin.* result columns."""
        return f"{self.distribution or self.package}=={self.version or '-'} sha256:{self.sha256}"


@functools.cache
def package_sha256(package: str) -> str:
    """sha256 over the relative paths and bytes of every .py file of a top-level package (or the file of a
    top-level module), found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ConfigError(f"plugin package '{package}' cannot be found on the Python path")
    if spec.submodule_search_locations:
        roots = [Path(p) for p in spec.submodule_search_locations]
        files = sorted({(root, f) for root in roots for f in root.rglob("*.py")}, key=lambda t: str(t[1]))
    else:
        origin = Path(spec.origin)
        files = [(origin.parent, origin)]
    digest = hashlib.sha256()
    for root, file in files:
        digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def _distribution_of(package: str) -> tuple[str, str]:
    names = importlib.metadata.packages_distributions().get(package, [])
    if not names:
        return "", ""
    return names[0], importlib.metadata.version(names[0])


def declaration_of(obj: Any, where: str, kind: str) -> Declaration:
    """The declaration an entry point or reference names: a Declaration, or an object with ``alb_info``."""
    if isinstance(obj, Declaration):
        return obj
    info = getattr(obj, "alb_info", None)
    if info is None:
        raise ConfigError(f"{kind} plugin {where}: {obj!r} is neither a benchmark.plugins.Declaration nor an object "
                          f"with an 'alb_info' attribute ({_INFO_TYPES[kind].__name__}); see README 'Write your "
                          "own strategy'")
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname:
        raise ConfigError(f"{kind} plugin {where}: cannot tell where {obj!r} lives (no __module__/__qualname__)")
    summary = ((getattr(obj, "__doc__", None) or "").strip().splitlines() or [""])[0]
    return Declaration(f"{module}:{qualname}", summary, info)


_INFO_TYPES: dict[str, type] = {"strategy": StrategyInfo, "backbone": BackboneInfo, "dataset": DatasetInfo}


def facts_problem(kind: str, declaration: Declaration) -> str | None:
    """What is wrong with a plugin's declared facts, or None."""
    info, expected = declaration.info, _INFO_TYPES[kind]
    if not isinstance(info, expected):
        return f"its facts are a {type(info).__name__}, a {kind} declares a benchmark.registry.{expected.__name__}"
    if not isinstance(declaration.target, str) or not REFERENCE.match(declaration.target):
        return f"its target {declaration.target!r} is not 'module.path:Attribute'"
    if not isinstance(info.version, int) or isinstance(info.version, bool) or info.version < 1:
        return f"version must be a positive int, got {info.version!r}"
    tasks = info.tasks if isinstance(info, StrategyInfo) else (info.task,)
    if not isinstance(tasks, tuple) or not tasks or any(t not in TASKS for t in tasks):
        return f"its task(s) {tasks!r} are not among {', '.join(TASKS)}"
    if isinstance(info, StrategyInfo):
        if info.kind not in STRATEGY_KINDS:
            return f"kind {info.kind!r} is not one of {', '.join(STRATEGY_KINDS)}"
        if not isinstance(info.needs, tuple) or not all(isinstance(n, str) for n in info.needs):
            return f"needs must be a tuple of names, got {info.needs!r}"
        unknown = [n for n in info.needs if n not in KNOWN_NEEDS]
        if unknown:
            return f"needs {unknown} unknown; allowed: {', '.join(sorted(KNOWN_NEEDS))}"
        if info.kind == "schedule" and not (info.initial and info.rounds):
            return "a schedule names its 'initial' and 'rounds' strategies"
    return None


def check_target(kind: str, name: str, obj: Any, origin: Origin | None) -> None:
    """A ConfigError when a plugin's object cannot be a ``kind`` (alb's own are trusted and tested)."""
    if origin is None:
        return
    where = f"'{name}' ({origin.label()})"
    if kind == "strategy":
        # a subclass of Strategy exists only once benchmark.strategies.base is imported: looked up rather than
        # imported, so this module (which the registry loads) stays below the strategies in the import graph
        base = sys.modules.get("benchmark.strategies.base")
        Strategy = getattr(base, "Strategy", None)
        if Strategy is None or not (isinstance(obj, type) and issubclass(obj, Strategy)):
            raise ConfigError(f"strategy plugin {where}: {obj!r} is not a subclass of "
                              "benchmark.strategies.base.Strategy")
        if obj.select is Strategy.select:
            raise ConfigError(f"strategy plugin {where}: {obj.__name__} does not define select(ctx, budget)")
    elif not callable(obj):
        what = "(num_classes=, in_channels=) -> Backbone" if kind == "backbone" else "(data_dir) -> ImageDataset"
        raise ConfigError(f"{kind} plugin {where}: {obj!r} is not callable as {what}")


def entry_points(kind: str) -> list[importlib.metadata.EntryPoint]:
    return sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUPS[kind]), key=lambda ep: ep.name)


def from_entry_point(kind: str, ep: importlib.metadata.EntryPoint) -> tuple[Declaration, Origin]:
    dist = ep.dist
    distribution, version = (dist.name, dist.version) if dist is not None else ("", "")
    where = f"'{ep.name}' (entry point {ep.value!r} of {distribution or 'an unknown distribution'})"
    try:
        obj = ep.load()
    except Exception as exc:  # a broken plugin names itself, never a traceback
        raise ConfigError(f"{kind} plugin {where} cannot be loaded: {type(exc).__name__}: {exc}") from None
    declaration = declaration_of(obj, where, kind)
    package = declaration.target.partition(":")[0].split(".")[0]
    return declaration, Origin(distribution, version, package)


def from_reference(kind: str, reference: str) -> tuple[Declaration, Origin]:
    """A suite's ``module.path:Attribute``, imported."""
    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"{kind} '{reference}': cannot import module '{module_name}' ({type(exc).__name__}: "
                          f"{exc}); install the package that provides it or put it on PYTHONPATH") from None
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{kind} '{reference}': module '{module_name}' has no attribute '{attribute}'")
        obj = getattr(obj, part)
    declaration = declaration_of(obj, f"'{reference}'", kind)
    package = module_name.split(".")[0]
    distribution, version = _distribution_of(package)
    origin = Origin(distribution, version, package)
    if not isinstance(obj, Declaration):
        check_target(kind, reference, obj, origin)  # imported already: check it now, when the suite loads
    return declaration, origin
