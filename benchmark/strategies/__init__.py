"""Query-strategy registry.

Plain strategies select a batch from the unlabeled pool. Schedules (seed 000's
hybrids) name one strategy for the initial selection, made by the randomly
initialised network, and another for every later round; they are ordinary
values of the suite key ``strategy``.
"""

from __future__ import annotations

from benchmark.registry import Registry

STRATEGIES: Registry = Registry("strategy")

_U = "benchmark.strategies.uncertainty"

STRATEGIES.register("random", "benchmark.strategies.random:RandomSampling",
                    "uniformly random unlabeled samples", kind="plain", needs=())
STRATEGIES.register("entropy", f"{_U}:EntropySampling",
                    "highest predictive entropy -sum p log p (Shannon 1948; Settles 2009)",
                    kind="plain", needs=("probs",))
STRATEGIES.register("least_confidence", f"{_U}:LeastConfidence",
                    "LC: highest 1 - max_k p_k (seed 000, phi_LC)", kind="plain", needs=("probs",))
STRATEGIES.register("high_confidence", f"{_U}:HighConfidence",
                    "HC: highest max_k p_k, the easiest samples first (seed 000, phi_HC)",
                    kind="plain", needs=("probs",))
STRATEGIES.register("margin", f"{_U}:MarginSampling",
                    "smallest gap between the two most probable classes (Scheffer et al. 2001)",
                    kind="plain", needs=("probs",))

# seed 000's schedules: (initial selection by the untrained network, every later round)
SCHEDULES = {
    "hclc": ("high_confidence", "least_confidence", "HC for the initial set, LC afterwards"),
    "lchc": ("least_confidence", "high_confidence", "LC for the initial set, HC afterwards"),
    "rhc": ("random", "high_confidence", "random initial set, HC afterwards"),
    "rlc": ("random", "least_confidence", "random initial set, LC afterwards"),
}
for _name, (_initial, _rounds, _what) in SCHEDULES.items():
    STRATEGIES.register(_name, f"benchmark.strategies.schedules:{_name.upper()}",
                        f"schedule (seed 000): {_what}", kind="schedule", initial=_initial, rounds=_rounds)


STRATEGIES.plan(
    ["bald", "batchbald", "mean_std", "var_ratio", "coreset", "kmeans", "typiclust", "probcover", "badge",
     "cluster_margin", "learning_loss", "lplgrad", "ent_gradnorm", "vaal", "ceal", "jlp", "svm_min_margin",
     "glister", "jls", "waal"],
    "planned: the query strategies of the papers and the field")


def phase_strategies(strategy: str, initial_strategy: str | None) -> tuple[str, str]:
    """(strategy for the initial set, strategy for the query rounds) of a cell."""
    info = STRATEGIES.entry(strategy).info
    if info["kind"] == "schedule":
        return info["initial"], info["rounds"]
    return initial_strategy or "random", strategy


def plain_strategy_names() -> list[str]:
    return [e.name for e in STRATEGIES if e.info["kind"] == "plain"]
