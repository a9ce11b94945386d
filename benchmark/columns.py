"""The roles of the columns of a result row, declared once (written by benchmark/store.py, read by the report).

A row of a cell file holds, side by side:

- *identity*: ``suite``, ``cell_id`` (and ``computed_by``, added when a suite's cells are loaded);
- *configuration*: the cell's resolved configuration, flattened (``budget.rounds``, ``strategy_params.k``);
  the same values are in the file's metadata (``config``), which is what decides which columns they are;
- *components*: the identity of the code and inputs the cell ran: ``version.*`` (benchmark/versions.py),
  ``input.*`` (digests of by-path inputs, benchmark/inputs.py), ``plugin.*`` (benchmark/plugins.py);
- *provenance*: where and how it ran (host, torch version, precision, ...), never compared;
- *metrics and round facts*: everything else the round reports (``round``, ``accuracy``, ``train_seconds``,
  a detection metric such as ``map_50`` ...).

A *protocol* (what cells must share to be ranked against each other) is derived from the configuration and
the components alone: the configuration without what selects (strategy, initial strategy, pool subset,
strategy parameters) and the seed, plus every component column except the strategies' ones. A metric added to
a round therefore never splits a protocol. Standard library only.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

IDENTITY_COLUMNS = ("suite", "cell_id")
# added when a suite's cells are loaded: the suite that computed the cell (the file's own ``suite`` column)
LOADED_COLUMNS = ("computed_by",)
# the round facts and metrics alb's own rounds report (a round may report more: any column not of another role)
ROUND_COLUMNS = ("round", "n_labeled", "n_pseudo_labeled", "accuracy", "macro_f1", "map_50", "map", "train_loss",
                 "train_seconds", "query_seconds", "selected", "finished_at", "candidate_seconds")
PROVENANCE_COLUMNS = ("alb_version", "git_commit", "torch_version", "device", "torch_threads", "host",
                      "python", "precision", "channels_last", "compiled")
VERSION_PREFIX = "version."
INPUT_PREFIX = "input."
PLUGIN_PREFIX = "plugin."
COMPONENT_PREFIXES = (VERSION_PREFIX, INPUT_PREFIX, PLUGIN_PREFIX)

# what defines a query strategy, not the training protocol: cells that differ only here are ranked together
# (a candidate model that picks the initial set is part of how a strategy selects: compared under one protocol)
STRATEGY_CONFIG_KEYS = ("strategy", "initial_strategy", "pool_subset", "candidate.subset", "candidate.epochs")
STRATEGY_PARAMS_KEY = "strategy_params"  # a mapping: one column per parameter a suite set
NOT_PROTOCOL_CONFIG_KEYS = (*STRATEGY_CONFIG_KEYS, "candidate", STRATEGY_PARAMS_KEY, "seed")
_STRATEGY_ROLES = ("strategy", "initial_strategy", "rounds_strategy")
# the identity of what selects (part of a strategy's label, not of the protocol)
STRATEGY_COMPONENT_COLUMNS = (*(f"{VERSION_PREFIX}{r}" for r in _STRATEGY_ROLES),
                              *(f"{PLUGIN_PREFIX}{r}" for r in _STRATEGY_ROLES))


def is_config_column(column: str, config_keys: Collection[str]) -> bool:
    """Whether ``column`` is a flattened configuration key: one of ``config_keys`` or below one of them
    (``strategy_params.k``, the keys of a mapping-valued setting)."""
    if column in config_keys:
        return True
    parts = column.split(".")
    return any(".".join(parts[:i]) in config_keys for i in range(1, len(parts)))


def is_component_column(column: str) -> bool:
    return column.startswith(COMPONENT_PREFIXES)


def column_role(column: str, config_keys: Collection[str]) -> str:
    """'identity', 'config', 'component', 'provenance' or 'metric' (round facts included)."""
    if column in IDENTITY_COLUMNS or column in LOADED_COLUMNS:
        return "identity"
    if is_component_column(column):
        return "component"
    if column in PROVENANCE_COLUMNS:
        return "provenance"
    if column not in ROUND_COLUMNS and is_config_column(column, config_keys):
        return "config"
    return "metric"


def in_protocol(column: str, config_keys: Collection[str]) -> bool:
    """Whether ``column`` defines the training protocol: a configuration column other than the strategy's and
    the seed, or a component column other than the strategies'."""
    role = column_role(column, config_keys)
    if role == "config":
        return not is_config_column(column, NOT_PROTOCOL_CONFIG_KEYS)
    return role == "component" and column not in STRATEGY_COMPONENT_COLUMNS


def protocol_columns(columns: Iterable[str], config_keys: Collection[str]) -> list[str]:
    """The columns of ``columns`` that define a training protocol (:func:`in_protocol`), sorted."""
    return sorted(c for c in columns if in_protocol(c, config_keys))
