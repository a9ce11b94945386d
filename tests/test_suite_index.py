"""include / exclude are matched through indexes (benchmark/suite_index.py, issue 20 item 10): they pick exactly
the cells that trying every entry on every cell with the suite's equality picks, and a big suite keeps them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.errors import ConfigError
from benchmark.perf.suite_matching import suite_document
from benchmark.suite import _MISSING, MAX_EXCLUDE_ENTRIES, _same_value, load_suite
from benchmark.suite_index import NO_MATCH, AxisIndex, PatternIndex, match_key

KEYS = ["seed", "strategy", "training.epochs", "view"]
SCALARS = st.one_of(st.booleans(), st.integers(-2, 2), st.sampled_from([0.0, 1.0, -0.0, 2.5, math.nan]),
                    st.sampled_from(["a", "1", "", "random"]), st.none())
INNER = st.one_of(st.booleans(), st.integers(-2, 2), st.sampled_from([0.0, 1.0, "a", None]))  # no NaN: see below
VALUES = st.one_of(SCALARS, st.lists(INNER, max_size=3), st.dictionaries(st.sampled_from(["x", "y"]), INNER,
                                                                         max_size=2))
FLAT = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4)


def tried_one_by_one(values: dict[str, Any], entries: list[dict[str, Any]]) -> list[int]:
    """The entries every key of which ``values`` has at the same value (the suite's own comparison)."""
    return [i for i, entry in enumerate(entries)
            if all(_same_value(values.get(k, _MISSING), v) for k, v in entry.items())]


# a NaN inside a list is left out: Python's list equality compares the same NaN object as equal, which
# the index (rightly) does not


@settings(max_examples=300, deadline=None)
@given(cells=st.lists(FLAT, min_size=1, max_size=6), entries=st.lists(FLAT, max_size=8))
def test_exclude_index_finds_what_trying_every_entry_finds(cells: list[dict[str, Any]],
                                                          entries: list[dict[str, Any]]) -> None:
    index = PatternIndex(entries)
    for values in cells:
        assert index.matching(values) == tried_one_by_one(values, entries)


@settings(max_examples=300, deadline=None)
@given(combos=st.lists(st.fixed_dictionaries({"seed": SCALARS, "strategy": VALUES}), max_size=8),
       entry=FLAT)
def test_include_index_finds_the_combinations_an_entry_agrees_with(combos: list[dict[str, Any]],
                                                                   entry: dict[str, Any]) -> None:
    constraints = [(k, v) for k, v in entry.items() if k in ("seed", "strategy")]
    expected = [j for j, axes in enumerate(combos) if all(_same_value(axes[k], v) for k, v in constraints)]
    assert AxisIndex(combos).agreeing(constraints) == expected


def test_match_keys_keep_booleans_apart_from_numbers_at_the_top_only() -> None:
    assert match_key(True) != match_key(1) and match_key(1) == match_key(1.0)
    assert match_key([True]) == match_key([1])  # as Python compares whole lists
    assert match_key("1") != match_key(1) and match_key([1]) != match_key((1,))
    assert match_key(math.nan) is NO_MATCH and match_key([1, math.nan]) is NO_MATCH  # equal to nothing


def _cells(path: Path) -> list[tuple[str, tuple[tuple[str, Any], ...]]]:
    return sorted((c.id, tuple(sorted(c.axes.items()))) for c in load_suite(path).cells)


def test_a_big_suite_keeps_exactly_the_cells_its_entries_leave(tmp_path: Path) -> None:
    document = suite_document(400, 600, include=50)  # seeds 0-99 excluded, 150-199 extended by include
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(document))
    cells = load_suite(path).cells
    kept_seeds = sorted({c.config.seed for c in cells})
    assert kept_seeds == list(range(100, 200)) and len(cells) == 200
    extended = {c.config.seed for c in cells if c.config.pool_subset == 100}
    assert extended == set(range(150, 200)) and all(c.config.strategy == "entropy" for c in cells
                                                    if c.config.pool_subset == 100)
    # the same cells whatever the order of the entries, and spelled nested instead of dotted
    document["exclude"] = [{"training": {"epochs": e["training.epochs"]}, "seed": e["seed"]}
                           if "training.epochs" in e else e for e in reversed(document["exclude"])]
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(document))
    assert _cells(again) == _cells(path)


def test_too_many_exclude_entries_are_refused_before_expanding(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(yaml.safe_dump({**suite_document(2, 0), "exclude": [{"seed": 0}] * (MAX_EXCLUDE_ENTRIES + 1)}))
    with pytest.raises(ConfigError) as caught:
        load_suite(path)
    message = str(caught.value)
    assert f"exclude has {MAX_EXCLUDE_ENTRIES + 1} entries, more than the {MAX_EXCLUDE_ENTRIES}" in message
    assert "fewer, broader entries" in message
