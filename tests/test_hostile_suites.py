"""Hostile suite files (issue 12): every one is refused with a ConfigError, fast, and nothing escapes --results.

Each case below was accepted, crashed or ran for minutes before the limits of benchmark/suite.py; the fuzz
test at the end mutates a valid suite at random and checks that loading it either works or raises alb's own
error, within a time and memory bound.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import resource
import signal
import tempfile
import textwrap
import tracemalloc
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from benchmark import cli
from benchmark.data.view_config import MAX_VIEW_POOL
from benchmark.errors import AlbError, ConfigError
from benchmark.strategies import PARAM_RANGES, STRATEGIES
from benchmark.suite import MAX_CELLS, MAX_NAME_LENGTH, load_suite

BASE = """\
defaults:
  dataset: digits
  backbone: small_cnn
  budget: {initial: 20, query: 20, rounds: 8}
  training:
    epochs: 3
    optimizer: {name: sgd, lr: 0.05}
"""
MATRIX = "matrix:\n  strategy: [random, entropy]\n  seed: [0, 1]\n"
SECONDS = 10  # far above what refusing any of these takes; the old code took 90-160 s on an alias bomb
MESSAGE_CHARS = 3000  # an error message stays readable, whatever the size of the bad value


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Raise TimeoutError in the block after ``seconds`` (the main thread's SIGALRM)."""
    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def refused(path: Path, seconds: float = SECONDS) -> str:
    """The message of the ConfigError that loading ``path`` raises, quickly and briefly."""
    with within(seconds), pytest.raises(ConfigError) as info:
        load_suite(path)
    message = str(info.value)
    assert len(message) < MESSAGE_CHARS, message[:500]
    return message


def line_of(path: Path, needle: str, start: int = 0) -> int:
    """1-based number of the first line after line ``start`` that starts with ``needle`` (indent aside)."""
    lines = path.read_text().splitlines()
    return next(n for n in range(start + 1, len(lines) + 1) if lines[n - 1].strip().startswith(needle))


# --------------------------------------------------------------------------- names (item 4)


@pytest.mark.parametrize("name", ["..", ".", "...", ".hidden", "a/b", "../escape", "a" * (MAX_NAME_LENGTH + 1),
                                  "a" * 300, "", "a b", "a\\b"])
def test_unsafe_names_are_refused(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, BASE + MATRIX + f"name: {yaml.safe_dump(name).splitlines()[0]}\n")
    assert yaml.safe_load(path.read_text())["name"] == name
    message = refused(path)
    assert f"{path}:{line_of(path, 'name:')}: key 'name'" in message
    assert "not a safe directory name" in message and "not starting with '.'" in message


@pytest.mark.parametrize("file_name", ["...yaml", ".hidden.yaml", "....yaml"])
def test_unsafe_default_names_from_the_file_are_refused(tmp_path: Path, file_name: str) -> None:
    path = write(tmp_path, BASE + MATRIX, file_name)
    message = refused(path)
    assert "not a safe directory name" in message and f"(got '{Path(file_name).stem}')" in message
    assert "file's stem" in message and "'name'" in message


@pytest.mark.parametrize("name", ["a", "quickstart", "seed000_cifar10.v2-b", "a" * MAX_NAME_LENGTH, "-x", "1.0"])
def test_safe_names_are_kept(tmp_path: Path, name: str) -> None:
    assert load_suite(write(tmp_path, BASE + MATRIX + f"name: '{name}'\n")).name == name


# --------------------------------------------------------------------------- size (item 5)


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """Anchors ``a0`` .. ``a{levels}``, each a list of ``width`` aliases of the one before: width**levels values."""
    lines = ["bomb:", "  - &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  - &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("use", ["description: *a9\n", "name: *a9\n",
                                 "matrix:\n  strategy: [random]\n  seed: *a9\n",
                                 "matrix:\n  strategy: [random]\ninclude: *a9\n",
                                 "matrix:\n  strategy: [random]\ninclude:\n  - {seed: 3, training.epochs: *a9}\n"])
def test_alias_bombs_are_refused_at_once(tmp_path: Path, use: str) -> None:
    # the bomb sits in an unknown key: a bounded loader must refuse it before the key is even looked at
    path = write(tmp_path, alias_bomb() + BASE + use)
    tracemalloc.start()
    try:
        message = refused(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert f"{path}:" in message and "expands to more than" in message


def test_recursive_aliases_are_refused(tmp_path: Path) -> None:
    message = refused(write(tmp_path, BASE + "matrix:\n  strategy: &s [random, *s]\n"))
    assert "recursive" in message


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    message = refused(write(tmp_path, BASE + MATRIX + "description: " + "[" * 3000 + "]" * 3000 + "\n"))
    assert "nested" in message


def test_a_big_file_is_refused_unread(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + MATRIX + "description: '" + "x" * 2_000_000 + "'\n")
    assert "at most" in refused(path)


def test_a_huge_matrix_is_refused_before_expanding(tmp_path: Path) -> None:
    seeds = ", ".join(str(i) for i in range(200))
    epochs = ", ".join(str(i) for i in range(1, 101))
    path = write(tmp_path, BASE + f"matrix:\n  strategy: [random, entropy, margin]\n  seed: [{seeds}]\n"
                 f"  training.epochs: [{epochs}]\n")
    message = refused(path)
    assert "3 x 200 x 100 = 60000 matrix combinations" in message and str(MAX_CELLS) in message


def test_huge_bad_values_are_cut_in_messages(tmp_path: Path) -> None:
    long = "x" * 200_000
    refused(write(tmp_path, BASE + MATRIX.replace("random,", f"{long},")))
    refused(write(tmp_path, BASE.replace("digits", long) + MATRIX))
    refused(write(tmp_path, BASE + MATRIX + f"exclude:\n  - {{strategy: {long}}}\n"))
    refused(write(tmp_path, BASE + MATRIX + f"defaults:\n  {long}: 1\n"))


def test_huge_integers_are_refused(tmp_path: Path) -> None:
    refused(write(tmp_path, BASE + MATRIX.replace("seed: [0, 1]", f"seed: [{'9' * 5000}]")))


# --------------------------------------------------------------------------- duplicates (item 6)


def test_duplicate_matrix_axes_are_refused_with_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "matrix:\n  seed: [0, 1, 2]\n  strategy: [random]\n  seed: [5]\n")
    first = line_of(path, "seed:")
    again = line_of(path, "seed:", first)
    message = refused(path)
    assert f"{path}:{again}: duplicate key 'seed' (first at line {first}, again at line {again})" in message


@pytest.mark.parametrize("text", [BASE + MATRIX + "defaults:\n  seed: 3\n",
                                  BASE.replace("rounds: 8}", "rounds: 8, rounds: 9}") + MATRIX,
                                  BASE.replace("epochs: 3", "epochs: 3\n    epochs: 4") + MATRIX])
def test_duplicate_keys_are_refused_everywhere(tmp_path: Path, text: str) -> None:
    assert "duplicate key" in refused(write(tmp_path, text))


def test_merge_keys_may_still_override(tmp_path: Path) -> None:
    text = BASE + "matrix:\n  strategy: [random]\ninclude:\n  - &i {strategy: lchc, seed: 1}\n  - {<<: *i, seed: 2}\n"
    suite = load_suite(write(tmp_path, text))
    assert sorted(c.config.seed for c in suite.cells) == [0, 1, 2]


def test_repeated_axis_values_are_refused_with_their_lines(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "matrix:\n  strategy: [random]\n  seed:\n    - 0\n    - 1\n    - 0\n")
    first = line_of(path, "- 0")
    again = line_of(path, "- 0", first)
    message = refused(path)
    assert f"{path}:{again}: matrix: axis 'seed' lists 0 again (first at line {first})" in message


def test_equal_looking_axis_values_of_other_types_are_no_repeat(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, BASE + "matrix:\n  strategy: [random]\n  training.optimizer.lr: [1, 1.5]\n"))
    assert len(suite.cells) == 2


# --------------------------------------------------------------------------- ranges (item 7)


@pytest.mark.parametrize("seed", [2**63, 2**70, -1])
def test_seeds_outside_int64_are_refused(tmp_path: Path, seed: int) -> None:
    message = refused(write(tmp_path, BASE + MATRIX.replace("seed: [0, 1]", f"seed: [{seed}]")))
    assert "key 'seed'" in message


def test_the_largest_seed_is_accepted(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, BASE + MATRIX.replace("seed: [0, 1]", f"seed: [{2**63 - 1}]")))
    assert {c.config.seed for c in suite.cells} == {2**63 - 1}


@pytest.mark.parametrize(("key", "value"), [("training.optimizer.lr", ".inf"),
                                            ("training.optimizer.weight_decay", ".inf"),
                                            ("training.svm_c", ".inf"), ("training.semi_gamma", ".inf"),
                                            ("training.aux_margin", ".inf"), ("training.aux_weight", ".inf")])
def test_infinite_settings_are_refused(tmp_path: Path, key: str, value: str) -> None:
    message = refused(write(tmp_path, BASE + MATRIX + f"  {key}: [{value}]\n"))
    assert f"key '{key}'" in message and "finite" in message


@pytest.mark.parametrize(("strategy", "params", "needs"), [
    ("vaal", "{epochs: -3}", "greater than 0"),
    ("vaal", "{batch_size: 0}", "greater than or equal to 1"),
    ("vaal", "{lr_vae: .inf}", "finite"),
    ("batchbald", "{num_samples: -1}", "greater than or equal to 1"),
    ("jlp", "{alpha: 1.5}", "less than 1"),
    ("probcover", "{purity: 0.0}", "greater than 0"),
    ("waal", "{selection: -1.0}", "greater than or equal to 0"),
    ("ceal", "{threshold: .nan}", "finite"),
])
def test_strategy_params_out_of_range_are_refused(tmp_path: Path, strategy: str, params: str, needs: str) -> None:
    text = BASE + f"  strategy: {strategy}\n  strategy_params: {params}\nmatrix:\n  seed: [0]\n"
    message = refused(write(tmp_path, text))
    assert "strategy_params" in message and needs in message


def test_strategy_params_in_range_are_kept(tmp_path: Path) -> None:
    text = BASE + "  strategy: vaal\n  strategy_params: {epochs: 100, beta: 0.0, iterations: 3}\nmatrix:\n  seed: [0]\n"
    (cell,) = load_suite(write(tmp_path, text)).cells
    assert cell.config.strategy_params == {"beta": 0.0, "epochs": 100.0, "iterations": 3}


def _numeric(annotation: Any) -> bool:
    return any(t in (int, float) for t in (annotation, *typing.get_args(annotation)))


def test_every_numeric_strategy_parameter_has_a_range() -> None:
    for entry in STRATEGIES:
        if entry.info.kind == "schedule":
            continue
        signature = inspect.signature(STRATEGIES.get(entry.name).__init__, eval_str=True)
        numeric = {n for n, p in signature.parameters.items() if n != "self" and _numeric(p.annotation)}
        assert numeric == set(PARAM_RANGES.get(entry.name, {})), entry.name


# --------------------------------------------------------------------------- views (issue 20 item 11)


@pytest.mark.parametrize("copies", [1_000_000_000, 10**300, MAX_VIEW_POOL // 100 + 1])
def test_a_view_pool_past_the_bound_is_refused_and_the_bound_said(tmp_path: Path, copies: int,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASE + f"  view: {{redundancy: {{unique: 100, copies: {copies}}}}}\n" + MATRIX)
    message = refused(path)
    assert f"{path}:{line_of(path, 'view:')}: key 'view.redundancy'" in message
    assert f"more than the {MAX_VIEW_POOL} a view's pool may have" in message
    assert cli.main(["run", str(path), "--dry-run", "--results", str(tmp_path / "results")]) == cli.EXIT_USAGE
    assert f"more than the {MAX_VIEW_POOL}" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_a_view_pool_at_the_bound_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + f"  view: {{redundancy: {{unique: 100, copies: {MAX_VIEW_POOL // 100}}}}}\n"
                 + MATRIX)
    assert len(load_suite(path).cells) == 4


# --------------------------------------------------------------------------- fuzz

FUZZ_BASE: dict[str, Any] = {
    "name": "fuzz",
    "description": "a valid suite, mutated",
    "defaults": {"dataset": "digits", "backbone": "small_cnn", "budget": {"initial": 20, "query": 20, "rounds": 2},
                 "training": {"epochs": 3, "optimizer": {"name": "sgd", "lr": 0.05}}},
    "matrix": {"strategy": ["random", "entropy"], "seed": [0, 1]},
    "include": [{"strategy": "vaal", "strategy_params": {"epochs": 2}},
                {"strategy": "entropy", "seed": 5, "view": {"redundancy": {"unique": 100, "copies": 2}}}],
    "exclude": [{"strategy": "random", "seed": 1}, {"seed": 0, "training": {"epochs": 3}}],
    "assumptions": [{"setting": "seed", "why": "none given", "source": "nowhere"}],
}
PATHS = [("name",), ("description",), ("defaults",), ("defaults", "dataset"), ("defaults", "budget"),
         ("defaults", "budget", "initial"), ("defaults", "budget", "rounds"), ("defaults", "training", "epochs"),
         ("defaults", "training", "optimizer", "lr"), ("defaults", "training", "optimizer"), ("defaults", "seed"),
         ("defaults", "strategy_params"), ("defaults", "view"), ("defaults", "pretraining"), ("defaults", "init"),
         ("matrix",), ("matrix", "strategy"), ("matrix", "seed"), ("matrix", "training.optimizer.lr"),
         ("include",), ("include", 0), ("include", 0, "strategy_params"), ("include", 0, "strategy_params", "epochs"),
         ("exclude",), ("exclude", 0, "seed"), ("assumptions",), ("assumptions", 0, "value"), ("references",),
         # include / exclude entries and views (issue 20)
         ("include", 1), ("include", 1, "seed"), ("include", 1, "view"), ("include", 1, "view", "redundancy"),
         ("include", 1, "view", "redundancy", "copies"), ("include", 1, "view", "redundancy", "unique"),
         ("include", 1, "view", "imbalance"), ("exclude", 0), ("exclude", 1), ("exclude", 1, "training"),
         ("exclude", 1, "training", "epochs"), ("defaults", "view", "redundancy"),
         ("defaults", "view", "imbalance"), ("matrix", "view.redundancy.copies"), ("matrix", "view.imbalance")]
HOSTILE_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from([2**63, 2**70, -(2**64), 10**300]),
    st.floats(), st.sampled_from([math.inf, -math.inf, math.nan, 1e308, -0.0]),
    st.text(max_size=30), st.sampled_from(["..", ".hidden", "a" * 5000, "random", "vaal", "digits", "50%", "inf%"]))
HOSTILE_VALUES = st.recursive(HOSTILE_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=12), st.sampled_from(
        ["seed", "strategy", "epochs", "training", "lr", "budget"])), inner, max_size=4)), max_leaves=12)
TEXT_MUTATIONS = st.sampled_from(["duplicate_line", "alias_bomb", "deep", "truncate", "anchor", "junk", "none"])


def _set(tree: Any, path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        tree = tree[part]
    tree[path[-1]] = value


def _many_entries(draw: st.DrawFn, tree: dict[str, Any]) -> None:
    """Many seeds and many include / exclude entries, some matching nothing, some repeated (issue 20 item 10)."""
    seeds = draw(st.integers(1, 300))
    entry = st.fixed_dictionaries({"seed": st.integers(-1, seeds)}, optional={
        "strategy": st.sampled_from(["random", "entropy", "margin"]),
        "training.epochs": st.sampled_from([3, 3.0, True]), "pool_subset": st.sampled_from([50, 100]),
        "view": HOSTILE_VALUES})
    with contextlib.suppress(TypeError):  # an earlier mutation replaced the matrix
        tree["matrix"]["seed"] = list(range(seeds))
    for key in ("include", "exclude"):
        tree[key] = draw(st.lists(entry, max_size=20)) * draw(st.integers(1, 100))


@st.composite
def suite_documents(draw: st.DrawFn) -> str:
    """The text of FUZZ_BASE with a few random values replaced and, maybe, its text mangled."""
    tree = yaml.safe_load(yaml.safe_dump(FUZZ_BASE))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(PATHS))
        with contextlib.suppress(KeyError, IndexError, TypeError):  # an earlier mutation replaced a parent
            _set(tree, path, draw(HOSTILE_VALUES))
    if draw(st.booleans()):
        _many_entries(draw, tree)
    text = yaml.safe_dump(tree, sort_keys=False)
    lines = text.splitlines()
    mutation = draw(TEXT_MUTATIONS)
    position = draw(st.integers(0, len(lines)))
    if mutation == "duplicate_line" and lines:
        line = lines[min(position, len(lines) - 1)]
        lines.insert(position, line)
    elif mutation == "alias_bomb":
        width, levels = draw(st.integers(2, 12)), draw(st.integers(1, 12))
        bomb = alias_bomb(levels, width).splitlines()
        lines = bomb + lines
        key = draw(st.sampled_from(["description", "name", "references", "include", "exclude"]))
        lines.append(f"{key}: *a{levels}")
    elif mutation == "deep":
        depth = draw(st.integers(10, 2000))
        lines.append("description: " + "[" * depth + "]" * depth)
    elif mutation == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    elif mutation == "anchor":
        lines = [line.replace("defaults:", "defaults: &d", 1) for line in lines] + ["exclude: [*d]"]
    elif mutation == "junk":
        lines.insert(position, draw(st.text(max_size=40)))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def fuzz_dir() -> Iterator[tuple[Path, int]]:
    """A directory for the documents, and the peak memory once loading a suite has imported what it needs."""
    with tempfile.TemporaryDirectory() as directory:
        warm = Path(directory) / "warm.yaml"
        warm.write_text(yaml.safe_dump(FUZZ_BASE))
        load_suite(warm)  # imports the strategies and datasets once, outside the time bound
        yield Path(directory), _peak_memory()


FUZZ_SECONDS = 5  # per document; refusing takes milliseconds, the margin is for a busy machine
FUZZ_MEMORY = 500 * 2**20  # growth of the process's peak resident memory over all documents


def _peak_memory() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


@settings(max_examples=200, deadline=None, phases=[Phase.explicit, Phase.generate, Phase.shrink],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(document=suite_documents())
def test_fuzzed_suites_load_or_raise_alb_errors(fuzz_dir: tuple[Path, int], document: str) -> None:
    directory, start_memory = fuzz_dir
    path = directory / "fuzzed.yaml"
    path.write_text(document)
    with within(FUZZ_SECONDS):
        try:
            load_suite(path)
        except AlbError as exc:
            assert len(str(exc)) < 20_000
    assert _peak_memory() - start_memory < FUZZ_MEMORY
