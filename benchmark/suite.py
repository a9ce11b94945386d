"""Suite files: YAML with ``defaults`` + ``matrix`` + ``include``/``exclude`` -> validated cells.

``matrix`` maps any dotted key (``strategy``, ``training.start``) to a list of
values; the cells are the cartesian product merged over ``defaults``. Nested
dicts and dotted keys mean the same everywhere, and dict values merge into the
defaults' subtree. ``exclude`` drops the matrix cells whose resolved values
(defaults included) match every key of an entry; an entry that matches nothing
is an error, since it is almost always a typo. ``include`` then works as in CI
matrices: an entry extends every remaining combination whose matrix values it
does not contradict (``{strategy: entropy, pool_subset: 10000}`` gives every
entropy cell a pool subset), and an entry that extends none becomes a cell of
its own, merged over ``defaults``. A suite with ``include`` and no ``matrix``
has just the included cells.

Hostile input is refused before it can cost much: a suite file is at most MAX_SUITE_BYTES, its YAML at most
MAX_YAML_NODES values with every alias expanded and MAX_YAML_DEPTH levels deep, without duplicate keys; a
suite expands to at most MAX_CELLS cells and has at most MAX_EXCLUDE_ENTRIES exclude entries, which are
matched through an index of their values, not tried on every cell; its name must be a safe directory name
(results go to RESULTS/<name>/).
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

try:
    from yaml._yaml import CParser
except ImportError:  # PyYAML built without libyaml: the pure-Python parser (see _SafeLoader)
    CParser = object
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from benchmark.config import (
    OPAQUE_KEYS,
    BudgetConfig,
    CellConfig,
    config_keys,
    cut_text,
    flatten,
    model_at,
    shorten,
)
from benchmark.errors import ConfigError, escape_unsafe
from benchmark.registry import did_you_mean
from benchmark.suite_index import AxisIndex, PatternIndex

MAX_ERRORS_SHOWN = 12
MAX_MESSAGE_CHARS = 1000  # one problem's message; values in it are cut to SHOWN_VALUE_CHARS
# the suites of suites/ are under 10 kB, 1,000 YAML values and 100 cells: these limits are far above any
# real suite, and far below what would take a machine's memory or minutes (an alias bomb)
MAX_SUITE_BYTES = 1_000_000
MAX_YAML_NODES = 100_000  # values of the document with every alias expanded (a 'billion laughs' is 10**9)
MAX_YAML_DEPTH = 32
MAX_CELLS = 10_000  # matrix combinations + include entries, counted before expanding
# exclude entries are matched through an index (benchmark/suite_index.py): 15,000 on 10,000 cells take about a
# second; a suite that needs more is better written with fewer, broader entries or split
MAX_EXCLUDE_ENTRIES = 20_000
MAX_NAME_LENGTH = 100
_SAFE_NAME = re.compile(rf"[A-Za-z0-9_-][A-Za-z0-9_.-]{{0,{MAX_NAME_LENGTH - 1}}}")
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _brief(value: Any) -> str:
    """``str(value)`` cut to SHOWN_VALUE_CHARS characters (a huge int has no str: its repr is shortened), its
    control and bidirectional characters escaped."""
    try:
        text = str(value)
    except ValueError:
        return shorten(value)
    return escape_unsafe(cut_text(text), newlines=False)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a suite's results directory, or None."""
    if _SAFE_NAME.fullmatch(name):
        return None
    return (f"not a safe directory name for the results: use 1-{MAX_NAME_LENGTH} letters, digits, '-', '_' "
            f"or '.', not starting with '.' (got {shorten(name)})")


class AssumptionEntry(BaseModel):
    """One entry of ``assumptions:``: a setting the paper does not state, the value the suite chose, why."""

    model_config = ConfigDict(extra="forbid", strict=True)

    setting: str = Field(description="dotted configuration key, e.g. training.schedule.name or budget.initial")
    value: Any = Field(None, description="the value assumed; when given, at least one cell must resolve to it, "
                       "and the assumption applies to the cells that do; omitted: it applies to every cell")
    why: str = Field(description="the reason for the choice")
    source: str = Field(description="where the paper is silent or ambiguous, e.g. 'seed 000 l.189'")

    @field_validator("setting", "why", "source")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must be a non-empty text")
        return v.strip()


class SuiteFile(BaseModel):
    """The top level of a suite file."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(None, description="results go to RESULTS/<name>/; default: the file's stem; 1-100 "
                             "letters, digits, '-', '_' or '.', not starting with '.'")
    description: str = ""
    defaults: dict[str, Any] = Field(default_factory=dict)
    matrix: dict[str, list[Any]] = Field(default_factory=dict)
    include: list[dict[str, Any]] = Field(default_factory=list)
    exclude: list[dict[str, Any]] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list,
                                  description="published numbers this suite should reproduce: entry ids, "
                                  "table ids (seed001/table2) or globs; see benchmark/published/")
    assumptions: list[AssumptionEntry] = Field(
        default_factory=list, description="settings the papers leave open and the values chosen, with why "
        "and where the paper is silent: {setting, value, why, source}; shown by list, report and check")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str | None) -> str | None:
        problem = None if v is None else name_problem(v)
        if problem:
            raise ValueError(problem)
        return v


@dataclass(frozen=True)
class Assumption:
    """A validated assumption: ``cells`` are the ids of the cells it applies to."""

    setting: str
    value: Any
    why: str
    source: str
    has_value: bool
    cells: frozenset[str]
    values: tuple[str, ...] = ()  # the suite's resolved values at ``setting`` (shown when no value is given)

    def shown_value(self) -> str:
        return _show(self.value) if self.has_value else " | ".join(self.values)

    def short(self) -> str:
        """'training.schedule.name=cosine'"""
        return f"{self.setting}={self.shown_value()}"

    def text(self) -> str:
        """'training.schedule.name = cosine — why (source: seed 000 l.189)'"""
        return f"{self.setting} = {self.shown_value()} — {self.why} (source: {self.source})"

    def record(self) -> dict[str, Any]:
        """JSON-ready form, written beside the results (see benchmark/assumptions.py)."""
        return {"setting": self.setting, "value": self.value, "has_value": self.has_value, "why": self.why,
                "source": self.source, "shown": self.shown_value(), "cells": sorted(self.cells)}


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):  # keys of mixed types, an int past Python's limit on digits
        return shorten(value)


@dataclass(frozen=True)
class Cell:
    """One point of the suite: a resolved configuration and its content address."""

    id: str
    config: CellConfig
    axes: dict[str, Any]

    def label(self) -> str:
        shown = self.axes or {"strategy": self.config.strategy, "seed": self.config.seed}
        return " ".join(f"{k}={v}" for k, v in shown.items())


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    description: str
    cells: list[Cell]
    axes: list[str]
    references: list[str]
    assumptions: list[Assumption] = field(default_factory=list)


def _flat(tree: dict[str, Any]) -> dict[str, Any]:
    return flatten(tree, opaque=OPAQUE_KEYS)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[leaf] = copy.deepcopy(value)


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with every leaf of ``overrides`` set; nested dicts and dotted keys mean the same."""
    tree = copy.deepcopy(base)
    for key, value in _flat(overrides).items():
        _set_dotted(tree, key, value)
    return tree


def _same_value(a: Any, b: Any) -> bool:
    """Equality that does not let True match 1 (YAML booleans are not seeds)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _line_of(root: yaml.Node | None, path: list[str | int]) -> int | None:
    """1-based line of the YAML node at ``path`` (mapping keys / sequence positions)."""
    node = root
    line = None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                return None
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return None
    return line


class _Errors:
    """Collects validation problems across cells; one ConfigError lists them all."""

    def __init__(self, path: Path, root: yaml.Node | None) -> None:
        self.path, self.root, self.messages = path, root, []
        self.unshown = 0  # problems found once the list was full, counted but not described

    def full(self) -> bool:
        """Enough problems to show: a caller may count the rest (``unshown``) instead of describing them."""
        return len(self.messages) >= MAX_ERRORS_SHOWN

    def add(self, message: str, *yaml_paths: list[str | int]) -> None:
        line = next((ln for p in yaml_paths if (ln := _line_of(self.root, p)) is not None), None)
        where = f"{self.path}:{line}" if line else f"{self.path}"
        if len(message) > MAX_MESSAGE_CHARS:
            message = f"{message[:MAX_MESSAGE_CHARS]}... ({len(message)} characters)"
        text = f"{where}: {message}"
        if text not in self.messages:
            self.messages.append(text)

    def raise_if_any(self) -> None:
        if self.messages:
            shown = self.messages[:MAX_ERRORS_SHOWN]
            more = len(self.messages) - len(shown) + self.unshown
            tail = f"\n  ... and {more} more" if more > 0 else ""
            raise ConfigError("invalid suite:\n  " + "\n  ".join(shown) + tail)


def _describe_pydantic_error(err: dict[str, Any], model: type[BaseModel] = CellConfig) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "(cell)"
    if err["type"] == "extra_forbidden":
        parent = model_at(tuple(p for p in loc[:-1] if not isinstance(p, int)), model)  # skip list positions
        allowed = sorted(parent.model_fields) if parent else []
        return (f"unknown key '{key}'. Allowed keys here: {', '.join(allowed)}."
                f"{did_you_mean(str(loc[-1]), allowed)}")
    if err["type"] == "missing":
        return f"missing required key '{key}'"
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "literal_error" and isinstance(err.get("input"), str):
        allowed = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
        message += did_you_mean(err["input"], allowed)
    shown_input = "" if err["type"] == "value_error" else f" (got {shorten(err.get('input'))})"
    return f"key '{key}': {message}{shown_input}"


def _check_keys(where: str, keys: list[str], valid: list[str], errors: _Errors,
                yaml_path: list[str | int]) -> bool:
    ok = True
    for key in keys:
        if key not in valid:
            ok = False
            if errors.full():
                errors.unshown += 1
                continue
            leaves = [v for v in valid if v.count(".") == key.count(".")]
            errors.add(f"{where}: unknown key '{_brief(key)}'. Allowed: {', '.join(leaves)}."
                       f"{did_you_mean(key, valid)}",
                       [*yaml_path, key], [*yaml_path, *key.split(".")], yaml_path)
    return ok


def _matches(cell_flat: dict[str, Any], pattern: dict[str, Any]) -> bool:
    return all(_same_value(cell_flat.get(k, _MISSING), v) for k, v in _flat(pattern).items())


_MISSING = object()


def _value_at(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
    return node


def _pool_size(config: CellConfig) -> int:
    from benchmark.data import dataset_info
    from benchmark.data.views import view_pool_size

    info = dataset_info(config.dataset)
    return view_pool_size(info, config.view) or int(info["n_train"])


def _canonical(setting: str, value: Any, config: CellConfig) -> Any:
    """An assumed value as the cell resolves it: a budget percentage becomes a count of the cell's pool."""
    if setting in ("budget.initial", "budget.query") and isinstance(value, str):
        try:
            budget = BudgetConfig.model_validate({"initial": value, "query": value, "rounds": 0})
        except ValidationError:
            return value
        return budget.resolved(_pool_size(config)).initial
    return value


def _assumption_holds(setting: str, value: Any, config: CellConfig) -> bool:
    resolved = _value_at(config.canonical(), setting)
    if isinstance(value, dict) and isinstance(resolved, dict):  # a subtree: every key given must match
        return _matches(_flat(resolved), value)
    return _same_value(resolved, _canonical(setting, value, config))


def _check_assumptions(entries: list[AssumptionEntry], cells: list[Cell], errors: _Errors) -> list[Assumption]:
    """Each entry's setting must be a configuration key, and its value, when given, some cell's."""
    valid = config_keys()
    assumptions = []
    for i, entry in enumerate(entries):
        where = ["assumptions", i]
        if not _check_keys(f"assumptions[{i}].setting", [entry.setting], valid, errors, [*where, "setting"]):
            continue
        present = [_value_at(c.config.canonical(), entry.setting) for c in cells]
        values = tuple(dict.fromkeys(_show(v) for v in present if v is not _MISSING))
        has_value = "value" in entry.model_fields_set
        applies = frozenset(c.id for c in cells
                            if not has_value or _assumption_holds(entry.setting, entry.value, c.config))
        if not applies:
            errors.add(f"assumptions[{i}]: assumption {entry.setting} = {_show(entry.value)} matches no cell; the "
                       f"suite sets {entry.setting} to: {', '.join(values) or '(nothing)'}",
                       [*where, "value"], where)
            continue
        assumptions.append(Assumption(entry.setting, entry.value, entry.why, entry.source, has_value, applies,
                                      values))
    return assumptions


def _identity(value: Any) -> str:
    """Equal for equal values of a matrix axis (1, 1.0, True and '1' differ); unique when JSON cannot say."""
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):  # keys of mixed types, an int past Python's limit on digits, a date
        return f"{type(value).__name__}@{id(value)}"


def _check_repeats(axis: str, values: list[Any], errors: _Errors) -> None:
    """A value listed twice on an axis would silently give the same cells once: an error."""
    first: dict[str, int] = {}
    for j, value in enumerate(values):
        position = first.setdefault(_identity(value), j)
        if position != j:
            line = _line_of(errors.root, ["matrix", axis, position])
            errors.add(f"matrix: axis '{_brief(axis)}' lists {_brief(value)} again (first "
                       f"{f'at line {line}' if line else f'as value {position + 1}'}); remove the repeat",
                       ["matrix", axis, j], ["matrix", axis])


def _resolved_values(config: CellConfig | None, defaults: dict[str, Any], axes: dict[str, Any]) -> dict[str, Any]:
    """A combination's flat values as exclude matches them: resolved, so that settings left at their defaults
    can be excluded too; an invalid combination's as written."""
    return _flat(config.canonical()) if config is not None else _flat(_merge(defaults, axes))


def _report_unmatched(exclude: list[dict[str, Any]], hits: list[int], errors: _Errors) -> None:
    for i, count in enumerate(hits):
        if count:
            continue
        if errors.full():
            errors.unshown += 1
        else:
            errors.add(f"exclude[{i}] {_brief(exclude[i])} matches no cell of the matrix", ["exclude", i])


@dataclass
class _Extras:
    """What include adds to each kept combination, and which entries extended at least one."""

    per_combination: list[dict[str, Any]]
    used: set[int]


def _include_extras(include: list[dict[str, Any]], kept: list[dict[str, Any]], axis_names: list[str]) -> _Extras:
    """An entry extends the kept combinations whose matrix values it does not contradict, when it sets a key
    that is not an axis; later entries override earlier ones."""
    index = AxisIndex(kept)
    axes = set(axis_names)
    extras = _Extras([{} for _ in kept], set())
    for i, entry in enumerate(include):
        entry_flat = _flat(entry)
        if not kept or all(k in axes for k in entry_flat):
            continue
        matching = index.agreeing((k, v) for k, v in entry_flat.items() if k in axes)
        for j in matching:
            extras.per_combination[j].update(entry_flat)
        if matching:
            extras.used.add(i)
    return extras


def parse_suite(data: Any, path: Path, root: yaml.Node | None = None) -> Suite:
    """Validate a parsed suite document and expand it into cells."""
    errors = _Errors(path, root)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a suite file must be a YAML mapping with keys "
                          "name, description, defaults, matrix, include, exclude")
    try:
        suite_file = SuiteFile.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            if errors.full():
                errors.unshown += 1
            else:
                errors.add(_describe_pydantic_error(err, SuiteFile), list(err["loc"]))
        errors.raise_if_any()
        raise AssertionError("unreachable") from exc
    if suite_file.name is None and (problem := name_problem(path.stem)):
        raise ConfigError(f"{path}: the suite's name defaults to the file's stem, which is {problem}; rename "
                          "the file or set the key 'name'")

    valid = config_keys()
    _check_keys("defaults", list(_flat(suite_file.defaults)), valid, errors, ["defaults"])
    _check_keys("matrix", list(suite_file.matrix), valid, errors, ["matrix"])
    for name, values in suite_file.matrix.items():
        if not values:
            errors.add(f"matrix: axis '{name}' has no values; give at least one", ["matrix", name])
        _check_repeats(name, values, errors)
    combinations = math.prod(len(values) for values in suite_file.matrix.values())
    if combinations + len(suite_file.include) > MAX_CELLS:
        sizes = " x ".join(str(len(values)) for values in suite_file.matrix.values()) or "0"
        errors.add(f"the suite has {sizes} = {combinations} matrix combinations and {len(suite_file.include)} "
                   f"include entries, more than the {MAX_CELLS} cells a suite may have; split it", ["matrix"])
    if len(suite_file.exclude) > MAX_EXCLUDE_ENTRIES:
        errors.add(f"exclude has {len(suite_file.exclude)} entries, more than the {MAX_EXCLUDE_ENTRIES} a suite may "
                   "have; use fewer, broader entries (an entry naming fewer keys removes more cells), list fewer "
                   "values on the matrix's axes, or split the suite", ["exclude"])
    for i, entry in enumerate(suite_file.include):
        _check_keys(f"include[{i}]", list(_flat(entry)), valid, errors, ["include", i])
    for i, entry in enumerate(suite_file.exclude):
        _check_keys(f"exclude[{i}]", list(_flat(entry)), valid, errors, ["exclude", i])
    errors.raise_if_any()

    axis_names = list(suite_file.matrix)
    defaults = _merge({}, suite_file.defaults)
    cells: dict[str, Cell] = {}

    def validate(tree: dict[str, Any], axes: dict[str, Any],
                 origin: list[str | int]) -> tuple[CellConfig | None, list[tuple[str, list[list[Any]]]]]:
        try:
            return CellConfig.model_validate(tree), []
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                loc = [str(p) for p in err["loc"]]
                axis_paths = [["matrix", a] for a in axes if ".".join(loc).startswith(a)]
                # name the cell only where the problem comes from its own values
                blame = bool(axis_paths or origin)
                where = f"cell {{{', '.join(f'{k}: {_brief(v)}' for k, v in axes.items())}}}: " if blame else ""
                yaml_paths = [[*origin, *loc]] if origin else []
                yaml_paths += [*axis_paths, ["defaults", *loc], ["defaults"]]
                problems.append((where + _describe_pydantic_error(err), yaml_paths))
            return None, problems

    def add(config: CellConfig | None, problems: list[tuple[str, list[list[Any]]]],
            axes: dict[str, Any]) -> None:
        for message, yaml_paths in problems:
            errors.add(message, *yaml_paths)
        if config is not None:
            cell = Cell(config.cell_id(), config, axes)
            cells.setdefault(cell.id, cell)

    # with no matrix, a suite of include entries has just those cells
    combos = [] if not suite_file.matrix and suite_file.include else \
        itertools.product(*suite_file.matrix.values())
    exclude_index = PatternIndex([_flat(entry) for entry in suite_file.exclude])
    excluded_hits = [0] * len(suite_file.exclude)
    kept: list[tuple[dict[str, Any], CellConfig | None, list[tuple[str, list[list[Any]]]]]] = []
    for combo in combos:
        axes = dict(zip(axis_names, combo, strict=True))
        config, problems = validate(_merge(defaults, axes), axes, [])
        hits = exclude_index.matching(_resolved_values(config, defaults, axes)) if suite_file.exclude else []
        for i in hits:
            excluded_hits[i] += 1
        if not hits:  # an excluded combination may be invalid: that is often why it is excluded
            kept.append((axes, config, problems))
    _report_unmatched(suite_file.exclude, excluded_hits, errors)

    # include, as in CI matrices: an entry extends every kept combination whose matrix values it does
    # not contradict; an entry that extends none becomes a cell of its own
    extras = _include_extras(suite_file.include, [axes for axes, _, _ in kept], axis_names)
    own_cells = [(i, _flat(entry)) for i, entry in enumerate(suite_file.include) if i not in extras.used]
    for (axes, config, problems), extra in zip(kept, extras.per_combination, strict=True):
        if not extra:  # validated above, as it is
            add(config, problems, axes=axes)
            continue
        shown = {**axes, **extra}
        add(*validate(_merge(_merge(defaults, axes), extra), shown, []), axes=shown)
    for i, entry_flat in own_cells:
        add(*validate(_merge(defaults, entry_flat), entry_flat, ["include", i]), axes=entry_flat)
    errors.raise_if_any()
    if not cells:
        raise ConfigError(f"{path}: the suite has no cells; give 'defaults' and a 'matrix'")
    if suite_file.references:
        from benchmark.published import resolve_references

        try:
            resolve_references(suite_file.references)
        except ConfigError as exc:
            errors.add(f"references: {exc}", ["references"])
            errors.raise_if_any()
    assumptions = _check_assumptions(suite_file.assumptions, list(cells.values()), errors)
    errors.raise_if_any()
    return Suite(suite_file.name or path.stem, path, suite_file.description, list(cells.values()),
                 axis_names, suite_file.references, assumptions)


def load_suite(path: str | Path) -> Suite:
    """Read, validate and expand a suite file; every problem becomes one ConfigError."""
    path = Path(path)
    if not path.is_file():
        nearby = sorted(p.name for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
        hint = f" Suites in {path.parent}: {', '.join(nearby)}." if nearby else ""
        raise ConfigError(f"suite file not found: {path}.{hint}")
    size = path.stat().st_size
    if size > MAX_SUITE_BYTES:
        raise ConfigError(f"{path}: {size} bytes; a suite file may have at most {MAX_SUITE_BYTES}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    try:
        root = yaml.compose(text, Loader=_DepthBoundedLoader)
        if root is not None:
            _check_document(root, path)
        data = _construct(root)
    except _TooDeepError as exc:
        raise ConfigError(f"{path}:{exc.line}: the YAML is nested more than {MAX_YAML_DEPTH} levels deep") from None
    except yaml.MarkedYAMLError as exc:
        if "nesting depth" in str(exc.problem):  # libyaml's own bound (1,000 levels), far above ours
            line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
            raise ConfigError(f"{path}:{line}: the YAML is nested more than {MAX_YAML_DEPTH} levels deep") from None
        raise ConfigError(f"{path}: not valid YAML: {_brief(exc)}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_brief(exc)}") from None
    except (ValueError, OverflowError) as exc:  # a scalar YAML resolves but Python cannot build (huge int, date)
        raise ConfigError(f"{path}: a value cannot be read: {_brief(exc)}") from None
    return parse_suite(data, path, root)


def _construct(root: yaml.Node | None) -> Any:
    """The Python values of a composed document (parsing the text again would double the time of a big suite)."""
    if root is None:
        return None
    loader = _DepthBoundedLoader("")
    try:
        return loader.construct_document(root)
    finally:
        loader.dispose()

class _TooDeepError(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _LibyamlSafeLoader(Composer, SafeConstructor, Resolver, CParser):
    """PyYAML's safe loader reading its events from libyaml (6x faster on a 500 kB suite), with PyYAML's own
    composer, so that the depth bound below still applies."""

    def __init__(self, stream: str) -> None:
        CParser.__init__(self, stream)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)


_SafeLoader: type = _LibyamlSafeLoader if CParser is not object else yaml.SafeLoader


class _DepthBoundedLoader(_SafeLoader):
    """The safe loader, stopping at MAX_YAML_DEPTH levels: its composer recurses once per level, and a
    deeply nested document would take seconds to end in a RecursionError."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH + 1:  # the value of a key one level deeper than its mapping
                raise _TooDeepError(self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _check_document(root: yaml.Node, path: Path) -> None:
    """Refuse, before anything is built from it, a document that refers to itself, nests deeper than
    MAX_YAML_DEPTH or has more than MAX_YAML_NODES values once every alias is expanded (an alias bomb is
    tiny as nodes but huge as values), and one with a key twice in a mapping (YAML would keep the last).
    Aliases share their node: one walk with sizes memoised by node costs the document's size, not the
    expanded size."""
    errors = _Errors(path, None)
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    entered: set[int] = set()  # the nodes of the current path from the root
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        line = node.start_mark.line + 1
        if finished:
            entered.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            depths[key] = 1 + max((depths[id(c)] for c in children), default=0)
            if sizes[key] > MAX_YAML_NODES:
                raise ConfigError(f"{path}:{line}: this value expands to more than {MAX_YAML_NODES} YAML values "
                                  "(every use of an alias counts its whole value); a suite is far smaller")
            if depths[key] > MAX_YAML_DEPTH:
                raise ConfigError(f"{path}:{line}: the YAML is nested more than {MAX_YAML_DEPTH} levels deep")
            continue
        if key in sizes:
            continue
        if key in entered:
            raise ConfigError(f"{path}:{line}: an alias refers to a value that contains it; a suite cannot be "
                              "recursive")
        entered.add(key)
        if isinstance(node, yaml.MappingNode):
            _check_duplicate_keys(node, errors)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    errors.raise_if_any()


def _check_duplicate_keys(node: yaml.MappingNode, errors: _Errors) -> None:
    first: dict[tuple[str, str], int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
            continue  # keys merged in with '<<' may be overridden: that is what merging means
        line, ident = key_node.start_mark.line + 1, (key_node.tag, key_node.value)
        if ident not in first:
            first[ident] = line
        elif errors.full():
            errors.unshown += 1
        else:
            seen = first[ident]
            errors.messages.append(f"{errors.path}:{line}: duplicate key '{_brief(key_node.value)}' (first at line "
                                   f"{seen}, again at line {line}); YAML would silently keep only the last: "
                                   "remove one")
