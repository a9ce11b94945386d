"""Query-strategy registry.

Plain strategies select a batch from the unlabeled pool. Schedules (seed 000's
hybrids) name one strategy for the initial selection, made by the randomly
initialised network, and another for every later round; they are ordinary
values of the suite key ``strategy``.
"""

from __future__ import annotations

from typing import Any

from annotated_types import Ge, Gt, Le, Lt

from benchmark.registry import EpochFraction, Registry, Requirement, StrategyInfo

STRATEGIES: Registry[Any, StrategyInfo] = Registry("strategy", StrategyInfo)


def _plain(*needs: str, **facts: Any) -> StrategyInfo:
    return StrategyInfo("plain", tuple(needs), **facts)


# strategies that score an image from per-sample class probabilities also select detection images: each box is
# scored, and the detection settings say how box scores become an image score (benchmark/detection/scoring.py)
_BOTH: dict[str, Any] = {"tasks": ("classification", "detection")}


def _aux(module: str) -> Requirement:
    return Requirement("training.aux", module, f"selects with the {module} module")


# LL4AL detaches its module's input from the backbone at 60 % of the epochs (120 of 200)
_LOSS_PREDICTION = {"requires": (_aux("loss_prediction"),),
                    "defaults": {"training.aux_detach_epoch": EpochFraction(0.6)}}

_U = "benchmark.strategies.uncertainty"

STRATEGIES.register("random", "benchmark.strategies.random:RandomSampling",
                    "uniformly random unlabeled samples", _plain(**_BOTH))
STRATEGIES.register("entropy", f"{_U}:EntropySampling",
                    "highest predictive entropy -sum p log p (Shannon 1948; Settles 2009)",
                    _plain("probs", **_BOTH))
STRATEGIES.register("least_confidence", f"{_U}:LeastConfidence",
                    "LC: highest 1 - max_k p_k (seed 000, phi_LC)", _plain("probs", **_BOTH))
STRATEGIES.register("high_confidence", f"{_U}:HighConfidence",
                    "HC: highest max_k p_k, the easiest samples first (seed 000, phi_HC)",
                    _plain("probs", **_BOTH))
STRATEGIES.register("margin", f"{_U}:MarginSampling",
                    "smallest gap between the two most probable classes (Scheffer et al. 2001)",
                    _plain("probs", **_BOTH))
# seed 000 l.106 expands HLH only as "Hybrid Least Confidence + High Confidence"; alb's reading (declared in
# suites/seed000_hybrid.yaml): every batch, the initial one too, is half LC and half HC
STRATEGIES.register("hlh", f"{_U}:HybridLCHC",
                    "HLH: each selection part LC, part HC (strategy_params.lc_fraction, default 0.5 LC); "
                    "alb's reading of seed 000 l.106", _plain("probs"))

# seed 000's schedules: (initial selection by the untrained network, every later round)
SCHEDULES = {
    "hclc": ("high_confidence", "least_confidence", "HC for the initial set, LC afterwards"),
    "lchc": ("least_confidence", "high_confidence", "LC for the initial set, HC afterwards"),
    "rhc": ("random", "high_confidence", "random initial set, HC afterwards"),
    "rlc": ("random", "least_confidence", "random initial set, LC afterwards"),
}
for _name, (_initial, _rounds, _what) in SCHEDULES.items():
    STRATEGIES.register(_name, f"benchmark.strategies.schedules:{_name.upper()}",
                        f"schedule (seed 000): {_what}", StrategyInfo("schedule", initial=_initial, rounds=_rounds,
                                                                   **_BOTH))


_B = "benchmark.strategies.bayesian"
STRATEGIES.register("bald", f"{_B}:BALD", "BALD: mutual information between prediction and weights under "
                    "MC dropout (Houlsby et al. 2011; Gal et al. 2017)", _plain("mc_dropout"))
STRATEGIES.register("batchbald", f"{_B}:BatchBALD", "BatchBALD: greedy joint mutual information of the batch "
                    "(Kirsch et al. 2019)", _plain("mc_dropout"))
STRATEGIES.register("mean_std", f"{_B}:MeanSTD", "mean over classes of the std of MC-dropout probabilities "
                    "(Kampffmeyer et al. 2016)", _plain("mc_dropout"))
STRATEGIES.register("var_ratio", f"{_B}:VariationRatio", "variation ratio 1 - mode frequency of MC-dropout "
                    "predictions (Freeman 1965; Gal et al. 2017)", _plain("mc_dropout"))
_D = "benchmark.strategies.diversity"
STRATEGIES.register("coreset", f"{_D}:CoreSet", "CoreSet: k-center greedy on penultimate embeddings "
                    "(Sener & Savarese 2018)", _plain("embeddings"))
STRATEGIES.register("kmeans", f"{_D}:KMeansSampling", "samples closest to k-means centres of the unlabeled "
                    "embeddings", _plain("embeddings"))
STRATEGIES.register("typiclust", f"{_D}:TypiClust", "TypiClust: most typical sample of each uncovered cluster "
                    "(Hacohen et al. 2022)", _plain("embeddings"))
STRATEGIES.register("probcover", f"{_D}:ProbCover", "ProbCover: greedy max coverage of delta-balls "
                    "(Yehuda et al. 2022)", _plain("embeddings"))
STRATEGIES.register("badge", "benchmark.strategies.badge:BADGE", "BADGE: k-means++ seeding on hallucinated "
                    "last-layer gradient embeddings (Ash et al. 2020)", _plain("probs", "embeddings"))
STRATEGIES.register("cluster_margin", "benchmark.strategies.cluster_margin:ClusterMargin",
                    "Cluster-Margin: margin-ranked samples spread over HAC clusters (Citovsky et al. 2021)",
                    _plain("probs", "embeddings"))
STRATEGIES.register("svm_min_margin", "benchmark.strategies.svm:SVMMinMargin", "linear one-vs-rest SVM (C=5) "
                    "on frozen features, smallest margin first (seed 003; Tong & Koller 2001)", _plain("embeddings"))

STRATEGIES.register("ent_gradnorm", "benchmark.strategies.gradnorm:EntropyGradNorm",
                    "Ent-GradNorm: largest Frobenius norm of the gradient of the output entropy w.r.t. all "
                    "weights (Wang et al. 2022; seed 002 Eqs. 6-9)", _plain("network"))

STRATEGIES.register("learning_loss", "benchmark.strategies.learning_loss:LearningLoss",
                    "LL4AL: highest loss predicted by the jointly trained loss-prediction module "
                    "(Yoo & Kweon 2019); sets training.aux: loss_prediction; on detection, the module reads the "
                    "SSD's multi-scale feature maps (LL4AL Sec. 4.2)",
                    _plain("loss_prediction", **_LOSS_PREDICTION, **_BOTH))
STRATEGIES.register("lplgrad", "benchmark.strategies.learning_loss:LPLGrad",
                    "LPLgrad: loss-prediction module trained jointly, selection by entropy gradient norm "
                    "(seed 002)", _plain("network", "loss_prediction", **_LOSS_PREDICTION))

STRATEGIES.register("ceal", "benchmark.strategies.ceal:CEAL", "CEAL: highest entropy, plus pseudo-labels for "
                    "the most certain samples in the next round's training (Wang et al. 2017; seed 004)",
                    _plain("probs", "pseudo_labels", requires=(Requirement(
                        "training.semi", "none", "trains on its own pseudo-labels, which label propagation "
                        "would take for true labels (seed 004 does not combine CEAL with SEMI)"),)))

STRATEGIES.register("jls", "benchmark.strategies.learning_loss:JLS",
                    "JLS: samples a jointly trained labeled-vs-unlabeled discriminator on the shared backbone "
                    "calls unlabeled most confidently (Caramalau et al. 2021; seed 001); sets training.aux: "
                    "discriminator", _plain("discriminator", requires=(_aux("discriminator"),)))

STRATEGIES.register("jlp", "benchmark.strategies.jlp:JointLabelPropagation",
                    "jLP: least manifold similarity to the labeled set by label propagation on a reciprocal "
                    "kNN graph (seed 004, Sec. V)", _plain("embeddings"))
STRATEGIES.register("vaal", "benchmark.strategies.vaal:VAAL", "VAAL: lowest 'labeled' score of a discriminator "
                    "trained adversarially with a VAE on labeled vs unlabeled images (Sinha et al. 2019)",
                    _plain("images"))

STRATEGIES.register("glister", "benchmark.strategies.glister:Glister", "GLISTER-Active: greedy max gain in the "
                    "labeled set's log-likelihood after a one-step last-layer update, Taylor-approximated "
                    "(Killamsetty et al. 2021; seed 000's baseline)", _plain("probs", "embeddings"))

STRATEGIES.register("waal", "benchmark.strategies.waal:WAAL", "WAAL: smallest loss upper bound minus 10 x the "
                    "score of a Wasserstein critic trained in a min-max game with the shared backbone on labeled "
                    "vs unlabeled data (Shui et al. 2020; seed 001); sets training.aux: wasserstein",
                    _plain("probs", "wasserstein", requires=(_aux("wasserstein"),),
                           # WAAL's alpha (official Test.py); its loader pairs every unlabeled sample once
                           defaults={"training.aux_weight": 2e-3, "training.epoch_length": "pool"}))

STRATEGIES.register("balanced", "benchmark.strategies.balanced:BalancedInitial",
                    "initial set only (initial_strategy: balanced): class counts as equal as possible, drawn "
                    "at random within each class using the pool's true labels (seed 004 l.203)",
                    StrategyInfo("initial", ("labels",)))


# The ranges of the strategies' numeric constructor parameters (``strategy_params`` in suite files), checked
# with their types by benchmark.config; every int / float parameter has one (tests/test_hostile_suites.py).
_COUNT, _POSITIVE, _NON_NEGATIVE, _FRACTION = (Ge(1),), (Gt(0),), (Ge(0),), (Gt(0), Lt(1))
_PASSES = {"passes": _COUNT}
PARAM_RANGES: dict[str, dict[str, tuple[Any, ...]]] = {
    "bald": _PASSES, "mean_std": _PASSES, "var_ratio": _PASSES,
    "batchbald": {**_PASSES, "num_samples": _COUNT, "candidates": _COUNT},
    "ceal": {"threshold": _NON_NEGATIVE, "decay": _NON_NEGATIVE},
    "cluster_margin": {"margin_multiple": _COUNT, "max_hac_points": _COUNT, "n_clusters": _COUNT},
    "coreset": {"chunk_size": _COUNT},
    "ent_gradnorm": {"chunk_size": _COUNT},
    "lplgrad": {"chunk_size": _COUNT},
    "hlh": {"lc_fraction": _FRACTION},
    "glister": {"eta": _NON_NEGATIVE, "epsilon": _FRACTION, "random_fraction": (Ge(0), Lt(1))},
    "jlp": {"k": _COUNT, "gamma": _POSITIVE, "alpha": _FRACTION, "cg_iterations": _COUNT, "tol": _POSITIVE},
    "kmeans": {"iterations": _COUNT},
    "probcover": {"delta": _POSITIVE, "n_clusters": _COUNT, "purity": (Gt(0), Le(1)), "max_edges": _COUNT},
    "svm_min_margin": {"C": _POSITIVE},
    "typiclust": {"k_neighbors": _COUNT, "max_clusters": _COUNT, "min_cluster_size": _COUNT, "iterations": _COUNT},
    "vaal": {"latent_dim": _COUNT, "width": _COUNT, "disc_hidden": _COUNT, "disc_depth": _COUNT,
             "beta": _NON_NEGATIVE, "adversary_weight": _NON_NEGATIVE, "lr_vae": _POSITIVE, "lr_disc": _POSITIVE,
             "batch_size": _COUNT, "epochs": _POSITIVE, "iterations": _COUNT, "vae_steps": _COUNT,
             "disc_steps": _COUNT},
    "waal": {"selection": _NON_NEGATIVE},
}


def phase_strategies(strategy: str, initial_strategy: str | None) -> tuple[str, str]:
    """(strategy for the initial set, strategy for the query rounds) of a cell."""
    info = STRATEGIES.info(strategy)
    if info.kind == "schedule":
        assert info.initial is not None and info.rounds is not None
        return info.initial, info.rounds
    return initial_strategy or "random", strategy


def plain_strategy_names() -> list[str]:
    return [e.name for e in STRATEGIES if e.info.kind == "plain"]


def initial_strategy_names() -> list[str]:
    """Values of ``initial_strategy``: every plain strategy and those that only pick the initial set."""
    return [e.name for e in STRATEGIES if e.info.kind in ("plain", "initial")]
