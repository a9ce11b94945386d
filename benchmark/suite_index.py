"""Indexes that match a suite's ``include`` / ``exclude`` entries without trying every entry on every cell.

A suite compares values with ``benchmark.suite._same_value``: Python equality, except that a boolean equals
only a boolean (YAML's ``true`` is not seed 1) and NaN equals nothing. ``match_key`` turns a value into a
hashable key with exactly that equality, so that an entry can be found by a dict lookup on its values:

- ``PatternIndex`` (exclude): each distinct entry is filed under one of its (key, value) pairs, the one fewest
  entries share; a cell looks up each filed key's value and checks the few candidates found, so matching costs
  about cells + entries, not cells x entries.
- ``AxisIndex`` (include): the kept matrix combinations, by the value of each axis; an entry's combinations
  are the intersection of its axes' lists, smallest first.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

NO_MATCH = object()  # the key of a value equal to nothing (NaN, anything holding one): no entry has it


class _Unmatchable(Exception):
    """The value holds a NaN: under the suite's equality it equals nothing."""


def match_key(value: Any) -> Hashable:
    """A hashable key; two values have equal keys exactly when the suite's matching calls them the same.

    At the top level a boolean is tagged apart from numbers; inside lists and mappings Python's equality holds
    (True == 1), as the suite's comparison of whole lists does. A value that holds a NaN gives NO_MATCH."""
    try:
        if isinstance(value, bool):
            return ("bool", value)
        return ("value", _inner_key(value))
    except _Unmatchable:
        return NO_MATCH


def _inner_key(value: Any) -> Hashable:
    if isinstance(value, float) and math.isnan(value):
        raise _Unmatchable
    if isinstance(value, list):
        return ("list", tuple(_inner_key(v) for v in value))
    if isinstance(value, tuple):
        return ("tuple", tuple(_inner_key(v) for v in value))
    if isinstance(value, dict):
        return ("dict", frozenset((k, _inner_key(v)) for k, v in value.items()))
    if isinstance(value, set | frozenset):
        return ("set", frozenset(_inner_key(v) for v in value))
    try:
        hash(value)
    except TypeError:  # no such value comes from YAML or JSON; compared by nothing rather than crash
        raise _Unmatchable from None
    return value


Pattern = tuple[tuple[str, Hashable], ...]  # an entry's flat (key, match_key) pairs


def pattern_of(flat_entry: dict[str, Any]) -> Pattern | None:
    """The entry's pairs, sorted; None when one of its values equals nothing (then it matches no cell)."""
    pairs = tuple(sorted((key, match_key(value)) for key, value in flat_entry.items()))
    return None if any(key is NO_MATCH for _, key in pairs) else pairs


class PatternIndex:
    """The entries of ``exclude``, each a flat {dotted key: value} mapping, filed for lookup by cell values."""

    def __init__(self, flat_entries: Sequence[dict[str, Any]]) -> None:
        patterns = [pattern_of(entry) for entry in flat_entries]
        # identical entries are matched once: their positions share the hits
        self._positions: dict[Pattern, list[int]] = {}
        for position, pattern in enumerate(patterns):
            if pattern is not None:
                self._positions.setdefault(pattern, []).append(position)
        self._always = [p for p in self._positions if not p]  # an empty entry matches every cell
        shared = Counter(pair for pattern in self._positions for pair in pattern)
        self._filed: dict[tuple[str, Hashable], list[Pattern]] = {}
        for pattern in self._positions:
            if pattern:
                self._filed.setdefault(min(pattern, key=shared.__getitem__), []).append(pattern)
        self._keys = sorted({key for key, _ in self._filed})

    def matching(self, flat_values: dict[str, Any]) -> list[int]:
        """Positions of the entries every key of which the cell has, at the same value; ascending."""
        keys: dict[str, Hashable] = {}

        def key_of(name: str) -> Hashable:
            if name not in keys:
                keys[name] = match_key(flat_values[name]) if name in flat_values else NO_MATCH
            return keys[name]

        found = list(self._always)
        for name in self._keys:
            found += self._filed.get((name, key_of(name)), ())
        hits = [position for pattern in found if all(key_of(k) == v for k, v in pattern)
                for position in self._positions[pattern]]
        return sorted(hits)


class AxisIndex:
    """Positions of matrix combinations ({axis: value}) by the value of each axis."""

    def __init__(self, combinations: Sequence[dict[str, Any]]) -> None:
        self.size = len(combinations)
        self._lists: dict[str, dict[Hashable, list[int]]] = {}
        for position, axes in enumerate(combinations):
            for axis, value in axes.items():
                self._lists.setdefault(axis, {}).setdefault(match_key(value), []).append(position)
        self._sets: dict[tuple[str, Hashable], set[int]] = {}

    def _with(self, axis: str, key: Hashable) -> list[int]:
        return [] if key is NO_MATCH else self._lists.get(axis, {}).get(key, [])

    def _set(self, axis: str, key: Hashable) -> set[int]:
        if (axis, key) not in self._sets:
            self._sets[(axis, key)] = set(self._with(axis, key))
        return self._sets[(axis, key)]

    def agreeing(self, constraints: Iterable[tuple[str, Any]]) -> list[int]:
        """Positions, ascending, of the combinations with every (axis, value) of ``constraints``."""
        keyed = [(axis, match_key(value)) for axis, value in constraints]
        if not keyed:
            return list(range(self.size))
        keyed.sort(key=lambda pair: len(self._with(*pair)))
        smallest, *others = keyed
        sets = [self._set(*pair) for pair in others]
        return [p for p in self._with(*smallest) if all(p in s for s in sets)]
