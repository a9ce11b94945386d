"""The fully resolved configuration of one cell, validated with pydantic.

Every model forbids unknown keys and is strict about types, so a typo in a
suite file is an error, never a silently ignored setting.
"""

from __future__ import annotations

import hashlib
import json
import math
import stat
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from benchmark.data import dataset_info, is_known_dataset, unknown_dataset_message
from benchmark.data.view_config import RedundancyConfig, ViewConfig
from benchmark.data.views import view_pool_size
from benchmark.errors import ConfigError, escape_unsafe
from benchmark.models import BACKBONES, mc_dropout_sites
from benchmark.registry import EpochFraction
from benchmark.strategies import PARAM_RANGES, STRATEGIES, initial_strategy_names, phase_strategies
from benchmark.strict_model import StrictModel

__all__ = ["RedundancyConfig", "StrictModel", "ViewConfig"]  # re-exported: part of the configuration

# Bump when the meaning of a configuration changes, so that old results are not mistaken for new ones;
# a change of one component (a strategy, backbone, dataset loader, the trainer, a pre-training method)
# bumps that component's version instead (benchmark/versions.py).
PROTOCOL_VERSION = 1

SHOWN_VALUE_CHARS = 200  # error messages show at most this much of a bad value


def cut_text(text: str, limit: int = SHOWN_VALUE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def shorten(value: Any, limit: int = SHOWN_VALUE_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters, so that a huge bad value never floods an error message."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's limit on digits for str()
        return f"<an integer of {value.bit_length()} bits>"
    return cut_text(text, limit)


def checkpoint_file_problem(path: Path) -> str | None:
    """Why the file of ``init: checkpoint:PATH`` cannot be read as a checkpoint, or None; checked when a suite is
    loaded, not in every cell. Only stat'ed: opening a FIFO would block, /dev/zero never ends."""
    where = f"init checkpoint: '{cut_text(escape_unsafe(str(path), newlines=False))}'"
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return (f"{where} does not exist; give the path of a file saved with torch.save (relative paths are "
                "taken from the directory alb runs in)")
    except OSError as exc:
        return f"{where} cannot be read ({exc.strerror or exc}); check the path and its permissions"
    if stat.S_ISREG(mode):
        return None
    kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else \
        "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "special"
    return f"{where} is {kind}, not a file; give the path of a file saved with torch.save"


# seeds are stored in int64 columns (results, reports); numpy's SeedSequence would take any size
MAX_SEED = 2**63 - 1

SSL_METHODS = ("simsiam", "deepcluster", "rotation")
INIT_CHOICES = ("scratch", "imagenet", *SSL_METHODS, "checkpoint:PATH")


class OptimizerConfig(StrictModel):
    name: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (ignored by adam)")
    weight_decay: float = Field(5e-4, ge=0)
    nesterov: bool = False


class ScheduleConfig(StrictModel):
    name: Literal["constant", "multistep", "cosine"] = "constant"
    milestones: list[int] = Field(default_factory=list, description="epochs where lr *= gamma")
    gamma: float = Field(0.1, gt=0, le=1)
    t_max: int | None = Field(None, gt=0, description="cosine: epochs over which lr decays to zero; null = the "
                              "training epochs (seed 004: 210 for 200 epochs, so lr never quite reaches zero)")

    @model_validator(mode="after")
    def _milestones(self) -> ScheduleConfig:
        if self.name == "multistep" and not self.milestones:
            raise ValueError("schedule 'multistep' needs a non-empty list 'milestones', e.g. [160]")
        if any(m <= 0 for m in self.milestones) or self.milestones != sorted(set(self.milestones)):
            raise ValueError(f"milestones must be positive and strictly increasing, got {self.milestones}")
        if self.t_max is not None and self.name != "cosine":
            raise ValueError(f"t_max is the period of the cosine schedule; remove it or set name: cosine "
                             f"(got name: {self.name})")
        return self


class TrainingConfig(StrictModel):
    epochs: int = Field(200, gt=0)
    batch_size: int = Field(128, gt=0)
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    augmentation: Literal["none", "standard", "strong", "resized_crop"] = Field(
        "standard", description="standard: random crop with padding (+ horizontal flip, see flip); strong: "
        "seed 003's self-training views, random-resized-crop (scale 0.2-1), flip, colour jitter (p 0.8) and "
        "grayscale (p 0.2); resized_crop: seed 003's supervised policy, random-resized-crop (scale 0.08-1, "
        "aspect 3/4-4/3) + flip; all on tensors on the training device. head linear augments every epoch "
        "through the frozen backbone (none: features computed once); head svm fits on un-augmented features "
        "and ignores this setting")
    flip: Literal["auto", "on", "off"] = Field(
        "auto", description="horizontal flips of the training augmentation: auto = the dataset's default "
        "(none for digits, SVHN, MNIST-like data), on = always (seed 001: every dataset), off = never; "
        "self-supervised pre-training keeps the dataset's default")
    start: Literal["warm", "cold"] = Field(
        "warm", description="warm: continue from the previous round's weights; cold: fresh init")
    aux: Literal["none", "loss_prediction", "discriminator", "wasserstein"] | None = Field(
        None, description="auxiliary module trained jointly with any strategy (seed 001 sections 5-6): "
        "loss_prediction = LL4AL's module (on a detector: over the SSD's multi-scale feature maps, target = "
        "each image's detection loss; the only module detection cells accept), discriminator = JLS's "
        "labeled-vs-unlabeled discriminator on "
        "the shared backbone (trains with unlabeled data), wasserstein = WAAL's critic on the shared "
        "backbone in a min-max game with gradient penalty (trains with unlabeled data); null = auto: what "
        "the strategy needs (learning_loss, lplgrad: loss_prediction; jls: discriminator; waal: "
        "wasserstein), else none")
    aux_weight: float | None = Field(
        None, gt=0, description="lambda of the auxiliary loss; null = auto: 1 (LL4AL, JLS), 0.002 for "
        "wasserstein (WAAL's alpha, official code)")
    aux_margin: float = Field(1.0, gt=0, description="margin of LL4AL's ranking loss")
    aux_detach_epoch: int | None = Field(
        None, ge=0, description="epoch from which the auxiliary module's input is detached from the "
        "backbone; null = 60 % of the epochs (LL4AL: 120 of 200)")
    epoch_length: Literal["labeled", "pool"] | None = Field(
        None, description="labeled: an epoch is one pass over the labeled set; pool: with an auxiliary module "
        "that trains on unlabeled data (discriminator, wasserstein), an epoch pairs every unlabeled sample "
        "once with a labeled one, the labeled set cycling (WAAL's official loader); null = auto: pool for "
        "wasserstein, else labeled")
    head_dropout: float | None = Field(
        None, ge=0, lt=1, description="dropout before the classifier; null = auto: 0.5 when a strategy "
        "needs MC dropout (BALD, ...) and the backbone has no dropout layer, else 0")
    conv_dropout: float | None = Field(
        None, ge=0, lt=1, description="dropout after the convolutional block, on backbones that declare that "
        "site (lenet, small_cnn, tiny_cnn); null = auto: 0.25 there when a strategy needs MC dropout and "
        "training.head is full (Gal et al. 2017's placement), else 0")
    head: Literal["full", "linear", "svm"] = Field(
        "full", description="full: fine-tune the whole network; linear: train only the linear classifier on "
        "frozen features (seed 003: lr 30, cosine, 100 epochs); svm: a linear SVM (one-vs-rest, C = svm_c) "
        "on frozen features, its decision values used as the logits")
    svm_c: float = Field(5.0, gt=0, description="regularisation C of training.head: svm (seed 003: 5)")
    semi: Literal["none", "label_propagation"] = Field(
        "none", description="label_propagation: seed 004's algorithm 1 (pseudo-labels of the whole pool "
        "from a kNN graph on the features, re-computed every epoch, weighted by entropy)")
    semi_k: int = Field(50, gt=0, description="neighbours of the reciprocal kNN graph (seed 004: 50)")
    semi_alpha: float = Field(0.99, gt=0, lt=1, description="label propagation's alpha (seed 004: 0.99)")
    semi_gamma: float = Field(3.0, gt=0, description="exponent of the cosine similarity (seed 004: 3)")
    semi_graph: Literal["reciprocal", "symmetric"] = Field(
        "reciprocal", description="kNN graph of label propagation: reciprocal = an edge only between mutual "
        "k nearest neighbours (seed 004 l.192); symmetric = W + W^T, every node keeps its k neighbours "
        "(Iscen et al.'s and seed 004's released code)")
    semi_warmup_epochs: int | None = Field(
        None, ge=0, description="label_propagation: epochs of supervised training on L (algorithm 1 line 4, "
        "at batch_size) before the `epochs` epochs of LP + SEMI; null = auto: epochs (Iscen et al.'s two "
        "equal stages); 0 = no warm-up (seed 004's released code)")
    semi_batch_size: int | None = Field(
        None, gt=1, description="label_propagation: mini-batch size of the SEMI epochs, 50 labeled + the "
        "rest pseudo-labeled (seed 004 Table I: 128, while the supervised warm-up uses batch_size 32); "
        "null = auto: batch_size")


class BudgetConfig(StrictModel):
    initial: int | str = Field(description="size of the initial labeled set: a count, or a percentage of "
                               "the pool such as '0.1%' (seed 003), resolved to a count at validation")
    query: int | str = Field(description="samples labeled per round: a count or a percentage of the pool")
    rounds: int = Field(ge=0, description="number of query rounds after the initial one")

    @field_validator("initial", "query")
    @classmethod
    def _count_or_percent(cls, v: int | str) -> int | str:
        if isinstance(v, int):
            if v <= 0:
                raise ValueError(f"must be a positive count or a percentage like '1%', got {v}")
            return v
        text = v.strip()
        try:
            percent = float(text.removesuffix("%")) if text.endswith("%") else None
        except ValueError:
            percent = None
        if percent is None or not 0 < percent <= 100:
            raise ValueError(f"must be a positive count or a percentage in (0, 100] like '0.1%', got '{v}'")
        return text

    def resolved(self, pool: int) -> BudgetConfig:
        """Percentages turned into counts of the pool (at least 1)."""
        def count(v: int | str) -> int:
            return v if isinstance(v, int) else max(1, round(pool * float(v.removesuffix("%")) / 100))

        return self.model_copy(update={"initial": count(self.initial), "query": count(self.query)})

    @property
    def total(self) -> int:
        assert isinstance(self.initial, int) and isinstance(self.query, int), "resolve percentages first"
        return self.initial + self.rounds * self.query


class PretrainingConfig(StrictModel):
    """Self-supervised pre-training on the whole unlabeled pool (init: simsiam | deepcluster | rotation),
    run once per (dataset, view, backbone, method, seed, these settings) and cached on disk."""

    epochs: int = Field(800, gt=0)
    batch_size: int | None = Field(None, gt=1, description="null = the method's own (SimSiam 512, DeepCluster "
                                   "256, rotation 512; see benchmark/pretrain/settings.py)")
    lr: float | None = Field(None, gt=0, description="null = the method's own (SimSiam: 0.03 x batch / 256)")
    weight_decay: float | None = Field(None, ge=0, description="null = the method's own (SimSiam: 1e-4)")
    momentum: float = Field(0.9, ge=0, lt=1)
    clusters: int | None = Field(None, gt=1, description="DeepCluster's k; null = 10 x the number of classes")
    crop_scale: tuple[float, float] | None = Field(
        None, description="DeepCluster only: area range of its RandomResizedCrop, [low, high] with 0 < low <= high "
        "<= 1; null = the method's own (0.08-1, torchvision's default in Caron et al.'s code)")

    @field_validator("crop_scale")
    @classmethod
    def _crop_scale(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not 0 < v[0] <= v[1] <= 1:
            raise ValueError(f"crop_scale must be [low, high] with 0 < low <= high <= 1, got {list(v)}")
        return v


class CandidateConfig(StrictModel):
    """The candidate-model practice seed 000 argues against (l.2, l.193): label a random subset, train a
    candidate network on it, and let the candidate (not the randomly initialised network) choose the rest of
    the initial set with ``initial_strategy``. The rounds then train a fresh network as usual."""

    subset: int = Field(gt=0, description="random labels the candidate trains on; they are part of the initial "
                        "set, so it must be smaller than budget.initial")
    epochs: int | None = Field(None, gt=0, description="the candidate's training epochs; null = training.epochs")


class DetectionConfig(StrictModel):
    """Settings of cells on a detection dataset (task: detection); null for classification cells."""

    aggregation: Literal["mean", "max", "sum"] = Field(
        "mean", description="how the scores of an image's boxes become the image's score "
        "(benchmark/detection/scoring.py): mean keeps phi_LC = 1 - phi_HC per image (seed 000 l.196-198)")
    empty_image: Literal["background", "uncertain"] = Field(
        "background", description="an image without any box above score_threshold is scored as one box that is "
        "certainly background (what the detector says), or as one uniform, maximally uncertain box")
    score_threshold: float = Field(0.01, ge=0, lt=1, description="boxes kept for scoring and evaluation "
                                   "(torchvision's SSD: 0.01)")
    nms_threshold: float = Field(0.45, gt=0, le=1, description="IoU of class-wise NMS (SSD: 0.45)")
    detections_per_image: int = Field(200, gt=0, description="most boxes kept per image (SSD: 200)")
    expand_max: float = Field(4.0, ge=1, description="SSD augmentation's expand (zoom out) up to this many "
                              "times the side (SSD: 4; 1 = no expand)")


class CellConfig(StrictModel):
    dataset: str
    backbone: str
    strategy: str
    initial_strategy: str | None = Field(
        None, description="strategy that picks the initial set with the randomly initialised "
        "network; default 'random', or the schedule's own for hclc/lchc/rhc/rlc; 'balanced' = equal class "
        "counts from the pool's true labels (seed 004 l.203)")
    candidate: CandidateConfig | None = Field(
        None, description="select the initial set with a candidate model trained on a random subset instead of "
        "the randomly initialised network (the baseline of seed 000's 'time saved'); its training seconds are "
        "recorded in the column candidate_seconds")
    strategy_params: dict[str, int | float | str | bool | None] | None = Field(
        None, description="constructor parameters of the strategy (see `alb list strategies --details`), e.g. "
        "{epochs: 100} for VAAL; also given to initial_strategy when it is the same strategy")
    pool_subset: int | None = Field(
        None, gt=0, description="score only a random subset of this many unlabeled samples in each query "
        "round, as seeds 001 (A.16: 10x the query size) and 002 (R) do; null: the whole pool")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="any integer in [0, 2**63 - 1]: results and reports keep "
                      "seeds in 64-bit integer columns")
    budget: BudgetConfig
    training: TrainingConfig = TrainingConfig()
    init: str = Field("scratch", description="starting weights of the backbone (its classifier always starts "
                      "fresh): scratch | imagenet (pretrained weights the library has) | simsiam | deepcluster "
                      "| rotation (self-supervised on the whole pool, cached) | checkpoint:PATH")
    pretraining: PretrainingConfig | None = Field(
        None, description="settings of init: simsiam | deepcluster | rotation; null = defaults, and "
        "always null for the other inits")
    view: ViewConfig | None = Field(None, description="class imbalance or redundancy of the training pool")
    detection: DetectionConfig | None = Field(
        None, description="settings of detection cells (datasets with task: detection); null = defaults there, "
        "and always null for classification")

    @field_validator("init")
    @classmethod
    def _init(cls, v: str) -> str:
        if v.startswith("checkpoint:"):
            from benchmark.inputs import checkpoint_path

            if not v.removeprefix("checkpoint:").strip():
                raise ValueError("init 'checkpoint:' needs a path, e.g. 'checkpoint:weights/simsiam.pt'")
            path = checkpoint_path(v)
            assert path is not None  # v starts with checkpoint:
            if problem := checkpoint_file_problem(path):
                raise ValueError(problem)
            return v
        if v not in INIT_CHOICES:
            from benchmark.registry import did_you_mean

            raise ValueError(f"unknown init '{v}'. Allowed: {', '.join(INIT_CHOICES)}.{did_you_mean(v, INIT_CHOICES)}")
        return v

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, v: str) -> str:
        if not is_known_dataset(v):
            raise ValueError(unknown_dataset_message(v))
        return v

    @field_validator("backbone")
    @classmethod
    def _backbone(cls, v: str) -> str:
        if v not in BACKBONES:
            raise ValueError(BACKBONES.unknown_message(v))
        return v

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, v: str) -> str:
        if v not in STRATEGIES:
            raise ValueError(STRATEGIES.unknown_message(v))
        if STRATEGIES.info(v).kind == "initial":
            raise ValueError(f"{v} picks only the initial set; use initial_strategy: {v} (and any strategy for "
                             "the query rounds)")
        return v

    @field_validator("initial_strategy")
    @classmethod
    def _initial_strategy(cls, v: str | None) -> str | None:
        if v is not None and v not in STRATEGIES and v in STRATEGIES.problems():  # a broken plugin says why
            raise ValueError(STRATEGIES.unknown_message(v))
        plain = initial_strategy_names()
        if v is not None and v not in plain:
            from benchmark.registry import did_you_mean

            raise ValueError(f"unknown initial strategy '{v}'. Allowed: {', '.join(plain)}."
                             f"{did_you_mean(v, plain)}")
        return v

    @model_validator(mode="after")
    def _resolve(self) -> CellConfig:
        try:
            dataset = dataset_info(self.dataset)
            # a view changes the pool; its size is None when only loading the data can tell (the runner checks)
            pool = view_pool_size(dataset, self.view)
        except ConfigError as exc:  # reported with the suite file's line like every other invalid value
            raise ValueError(str(exc)) from None
        budget = self.budget.resolved(pool if pool is not None else dataset["n_train"])
        if pool is not None and budget.total > pool:
            view = "" if self.view is None else " with this view"
            raise ValueError(
                f"budget: initial + rounds x query = {budget.initial} + {budget.rounds} x "
                f"{budget.query} = {budget.total} labels, but dataset '{self.dataset}'{view} has "
                f"only {pool} training images; lower budget.rounds or budget.query")
        task = dataset.get("task", "classification")
        detection = _resolved_detection(self, task)
        min_size = BACKBONES.info(self.backbone).min_image_size
        if dataset["image_size"] < min_size:
            raise ValueError(f"backbone '{self.backbone}' needs images of at least {min_size}px, "
                             f"dataset '{self.dataset}' has {dataset['image_size']}px")
        if self.pool_subset is not None and self.pool_subset < budget.query:
            raise ValueError(f"pool_subset {self.pool_subset} is smaller than budget.query {budget.query}: "
                             "a round could not label its batch from it")
        initial, rounds = phase_strategies(self.strategy, self.initial_strategy)
        if self.initial_strategy not in (None, initial):
            raise ValueError(f"strategy '{self.strategy}' is a schedule whose initial strategy is "
                             f"'{initial}'; remove initial_strategy '{self.initial_strategy}'")
        candidate = self._resolved_candidate(budget, initial)
        phases = tuple(dict.fromkeys((initial, rounds)))
        needs_mc = any("mc_dropout" in STRATEGIES.info(s).needs for s in phases)
        head_dropout, conv_dropout = _resolved_dropout(self.backbone, self.strategy, self.training, needs_mc)
        training = _with_strategy_settings(self.strategy, phases, self.training)
        epoch_length = training.epoch_length or "labeled"
        if epoch_length == "pool" and training.aux not in ("discriminator", "wasserstein"):
            raise ValueError("training.epoch_length: pool pairs labeled with unlabeled batches, which only the "
                             f"auxiliary modules discriminator and wasserstein train on (training.aux is "
                             f"{training.aux})")
        training = training.model_copy(update={"head_dropout": head_dropout, "conv_dropout": conv_dropout,
                                               "aux_weight": training.aux_weight or 1.0,
                                               "epoch_length": epoch_length,
                                               **_resolved_semi_schedule(self.training)})
        params = _checked_strategy_params(self.strategy, self.strategy_params)
        combination = _unsupported_combination(training)
        if combination:
            raise ValueError(combination)
        if self.init == "imagenet" and not BACKBONES.info(self.backbone).imagenet:
            with_weights = [e.name for e in BACKBONES if e.info.imagenet]
            raise ValueError(f"init 'imagenet': backbone '{self.backbone}' has no ImageNet weights in alb; "
                             f"backbones with them: {', '.join(with_weights) or 'none'}")
        pretraining = (self.pretraining or PretrainingConfig()) if self.init in SSL_METHODS else None
        if pretraining is not None and pretraining.crop_scale is not None and self.init != "deepcluster":
            raise ValueError(f"pretraining.crop_scale applies to init: deepcluster only, not {self.init} (SimSiam's "
                             "crop is the strong policy's 0.2-1); remove it")
        for name in phases:
            if task not in STRATEGIES.info(name).tasks:
                able = [e.name for e in STRATEGIES if task in e.info.tasks and e.info.kind != "initial"]
                raise ValueError(f"strategy '{name}' cannot select for {task} (dataset '{self.dataset}'); "
                                 f"strategies that can: {', '.join(able)}")
        return self.model_copy(update={"initial_strategy": initial, "training": training, "budget": budget,
                                       "pretraining": pretraining, "strategy_params": params,
                                       "candidate": candidate, "detection": detection})

    def _resolved_candidate(self, budget: BudgetConfig, initial: str) -> CandidateConfig | None:
        c = self.candidate
        if c is None:
            return None
        assert isinstance(budget.initial, int)
        if c.subset >= budget.initial:
            raise ValueError(f"candidate.subset {c.subset} must be smaller than budget.initial {budget.initial}: "
                             "the candidate's random labels are part of the initial set, and it chooses the rest")
        if STRATEGIES.info(initial).kind == "initial" or initial == "random":
            raise ValueError(f"candidate: the initial strategy '{initial}' does not read a model, so a candidate "
                             "would choose nothing; set initial_strategy to one that does (least_confidence, ...)")
        return c.model_copy(update={"epochs": c.epochs or self.training.epochs})

    @property
    def task(self) -> str:
        """classification or detection: what the cell's dataset asks for."""
        return "classification" if self.detection is None else "detection"

    def canonical(self) -> dict[str, Any]:
        config = self.model_dump(mode="json")
        # settings a cell does not use are left out, so that its id stays what it was before they existed
        if config["candidate"] is None:
            del config["candidate"]
        if config["detection"] is None:  # classification cells have no detection settings
            del config["detection"]
        return config

    def cell_id(self) -> str:
        """Content address: the same resolved configuration, run by the same versions of its components
        (benchmark/versions.py) on the same content of its by-path inputs (benchmark/inputs.py), always gets
        the same id."""
        from benchmark.inputs import input_digests
        from benchmark.versions import component_versions, plugin_identities

        identity: dict[str, Any] = {"protocol": PROTOCOL_VERSION, "config": self.canonical(),
                                    "versions": component_versions(self)}
        inputs = input_digests(self)  # what a by-path dataset or checkpoint holds (issue 20.2); absent otherwise
        if inputs:
            identity["inputs"] = inputs
        plugins = plugin_identities(self)  # a plugin's distribution, version and sources; absent for alb's own
        if plugins:
            identity["plugins"] = plugins
        payload = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _resolved_detection(cell: CellConfig, task: str) -> DetectionConfig | None:
    """The detection settings of a detection cell (defaults when null); an error where the backbone, the
    training settings or the init do not fit the dataset's task."""
    backbone_task = BACKBONES.info(cell.backbone).task
    if backbone_task != task:
        fitting = [e.name for e in BACKBONES if e.info.task == task]
        raise ValueError(f"dataset '{cell.dataset}' is a {task} dataset but backbone '{cell.backbone}' is a "
                         f"{backbone_task} model; use one of: {', '.join(fitting)}")
    if task != "detection":
        if cell.detection is not None:
            raise ValueError(f"detection settings apply to detection datasets only; dataset '{cell.dataset}' is "
                             "a classification dataset: remove 'detection'")
        return None
    training = cell.training
    unsupported = {"augmentation": (training.augmentation, ("standard", "none")), "head": (training.head, ("full",)),
                   "semi": (training.semi, ("none",)),
                   "aux": (training.aux, (None, "none", "loss_prediction")),
                   "flip": (training.flip, ("auto", "on", "off"))}
    for key, (value, allowed) in unsupported.items():
        if value not in allowed:
            raise ValueError(f"training.{key}: {value} is not available for detection (allowed: "
                             f"{', '.join(str(a) for a in allowed if a is not None)}; augmentation standard = the SSD "
                             "recipe)")
    if cell.init not in ("scratch", "imagenet"):
        raise ValueError(f"init '{cell.init}' is not available for detection: scratch or imagenet")
    if cell.view is not None:
        raise ValueError("view (imbalance, redundancy) is defined by class labels; detection datasets have none")
    if dataset_info(cell.dataset)["channels"] != 3 and cell.backbone != "small_ssd":  # torchvision's take RGB
        raise ValueError(f"backbone '{cell.backbone}' needs RGB images; dataset '{cell.dataset}' is grey: use "
                         "small_ssd")
    return cell.detection or DetectionConfig()


def _checked_strategy_params(strategy: str, params: dict[str, Any] | None) -> dict[str, Any] | None:
    """``params`` validated against the strategy class's constructor (names and annotated types); empty -> None.
    Only a suite that sets parameters pays for importing the strategy's module (and torch)."""
    if not params:
        return None
    if STRATEGIES.info(strategy).kind == "schedule":
        raise ValueError(f"strategy_params: '{strategy}' is a schedule of two strategies; set no parameters")
    import inspect

    from pydantic import TypeAdapter, ValidationError

    signature = inspect.signature(STRATEGIES.get(strategy).__init__, eval_str=True)
    accepted = {n: p for n, p in signature.parameters.items()
                if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    checked = {}
    for name, value in sorted(params.items()):
        if name not in accepted:
            from benchmark.registry import did_you_mean

            allowed = ", ".join(f"{n}={p.default!r}" for n, p in accepted.items()) or "none"
            raise ValueError(f"strategy_params: '{strategy}' has no parameter '{name}'. Its parameters (with "
                             f"defaults): {allowed}.{did_you_mean(name, list(accepted))}")
        try:
            checked[name] = TypeAdapter(accepted[name].annotation).validate_python(value, strict=True)
        except ValidationError:
            expected = accepted[name].annotation
            raise ValueError(f"strategy_params.{name}: '{strategy}' expects {getattr(expected, '__name__', expected)}"
                             f", got {shorten(value)}") from None
        problem = _out_of_range(checked[name], PARAM_RANGES.get(strategy, {}).get(name, ()))
        if problem:
            raise ValueError(f"strategy_params.{name}: '{strategy}' needs {problem}, got {shorten(value)}")
    return checked


def _out_of_range(value: Any, bounds: tuple[Any, ...]) -> str | None:
    """What a numeric strategy parameter violates (finite, then its declared ``bounds``), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return "a finite number"
    from pydantic import TypeAdapter, ValidationError

    try:
        TypeAdapter(Annotated[(type(value), *bounds)]).validate_python(value)
    except ValidationError as exc:
        return "a value " + exc.errors()[0]["msg"].removeprefix("Input should be ")
    return None


def _with_strategy_settings(strategy: str, phases: tuple[str, ...], training: TrainingConfig) -> TrainingConfig:
    """``training`` with what the registry declares for the cell's strategies (benchmark/strategies/__init__.py):
    each phase strategy's ``requires`` (null -> the value; another value is an error), then, for settings
    still null, the ``defaults`` of the phase strategies and of the strategies whose auxiliary module the
    cell trains (WAAL's alpha also when another strategy trains its critic). training.aux left null is none."""
    values = dict(training)
    required: dict[str, tuple[Any, str]] = {}
    for name in phases:
        for req in STRATEGIES.info(name).requires:
            key = _training_key(name, req.setting)
            if key in required and required[key][0] != req.value:
                raise ValueError(f"the strategies of '{strategy}' need different values of {req.setting}: "
                                 f"{required[key][0]} ({required[key][1]}) and {req.value} ({name})")
            required[key] = (req.value, name)
            if values[key] is None:
                values[key] = req.value
            elif values[key] != req.value:
                raise ValueError(f"strategy '{strategy}' {req.why}; remove {req.setting}: {values[key]} "
                                 f"(auto: {req.value})")
    values["aux"] = values["aux"] or "none"
    owners = [*phases, *(e.name for e in STRATEGIES if e.name not in phases
                         and any(r.setting == "training.aux" and r.value == values["aux"] for r in e.info.requires))]
    for name in owners:
        for setting, default in STRATEGIES.info(name).defaults.items():
            key = _training_key(name, setting)
            if values[key] is None:
                values[key] = default.of(training.epochs) if isinstance(default, EpochFraction) else default
    return training.model_copy(update=values)


def _training_key(strategy: str, setting: str) -> str:
    """'training.aux' -> 'aux'; strategies declare settings of ``training`` only."""
    key = setting.removeprefix("training.")
    if key == setting or key not in TrainingConfig.model_fields:
        raise AssertionError(f"strategy '{strategy}' declares '{setting}', which is no training.* setting")
    return key


def _resolved_dropout(backbone: str, strategy: str, training: TrainingConfig,
                      needs_mc: bool) -> tuple[float, float]:
    """(head_dropout, conv_dropout) of a cell. With MC dropout, auto puts dropout where the backbone's registry
    entry declares it (lenet, small_cnn, tiny_cnn: 0.25 after the conv block and 0.5 before the classifier, Gal et al.
    2017; others without dropout: 0.5 before the classifier). The conv site stays off with a frozen backbone
    (training.head linear/svm), which would be sampled with a dropout it never trained with. Without MC
    dropout both default to 0, so those cells are unchanged."""
    sites = mc_dropout_sites(backbone) if needs_mc else {}
    head_dropout = training.head_dropout
    if head_dropout is None:
        head_dropout = sites.get("head", 0.0)
    conv_dropout = training.conv_dropout
    if conv_dropout is None:
        conv_dropout = sites.get("conv", 0.0) if training.head == "full" else 0.0
    elif conv_dropout > 0 and "conv" not in (BACKBONES.info(backbone).mc_dropout or {}):
        with_site = [e.name for e in BACKBONES if "conv" in (e.info.mc_dropout or {})]
        raise ValueError(f"training.conv_dropout: backbone '{backbone}' declares no dropout site after its "
                         f"convolutional block (backbones with one: {', '.join(with_site)}); remove it")
    has_dropout = BACKBONES.info(backbone).has_dropout
    if needs_mc and not has_dropout and head_dropout == 0 and conv_dropout == 0:
        raise ValueError(f"strategy '{strategy}' needs MC dropout but backbone '{backbone}' has no dropout "
                         "layer and training.head_dropout is 0; remove it (auto: 0.5) or raise it")
    return head_dropout, conv_dropout


def _resolved_semi_schedule(training: TrainingConfig) -> dict[str, int | None]:
    """The auto values of label propagation's phases (semi_warmup_epochs: epochs, semi_batch_size:
    batch_size); both must stay unset without label propagation, which alone reads them."""
    if training.semi == "none":
        given = [k for k in ("semi_warmup_epochs", "semi_batch_size") if getattr(training, k) is not None]
        if given:
            raise ValueError(f"training.{given[0]} is only read by training.semi: label_propagation (training.semi "
                             "is none); remove it or set semi: label_propagation")
        return {}
    return {"semi_warmup_epochs": training.epochs if training.semi_warmup_epochs is None
            else training.semi_warmup_epochs,
            "semi_batch_size": training.semi_batch_size or training.batch_size}


def _unsupported_combination(training: TrainingConfig) -> str | None:
    """Settings that cannot be combined (the trainer would have to guess), as an error message."""
    if training.head != "full" and training.aux != "none":
        return (f"training.head: {training.head} freezes the backbone, which the auxiliary module "
                f"'{training.aux}' trains; use head full or a strategy without an auxiliary module")
    if training.semi != "none" and training.head != "full":
        return "training.semi: label_propagation re-learns the features every epoch; it needs training.head: full"
    if training.semi != "none" and training.aux != "none":
        return f"training.semi: label_propagation cannot be combined with the auxiliary module '{training.aux}'"
    if training.semi != "none" and (training.semi_batch_size or training.batch_size) < 2:
        return ("training.semi: label_propagation mixes labeled and pseudo-labeled samples: semi_batch_size "
                "(auto: batch_size) must be >= 2")
    return None


# settings whose value is a free-form mapping: one key in suite files (never split into dotted keys)
OPAQUE_KEYS = ("strategy_params",)


def flatten(tree: dict[str, Any], prefix: str = "", opaque: tuple[str, ...] = ()) -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists and the mappings under ``opaque`` keys stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in opaque:
            flat.update(flatten(value, f"{path}.", opaque))
        else:
            flat[path] = value
    return flat


def config_keys(model: type[BaseModel] = CellConfig, prefix: str = "") -> list[str]:
    """Every dotted key a cell accepts, including the intermediate ones ('training')."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        keys.append(path)
        if (sub := _submodel(field.annotation)) is not None:
            keys.extend(config_keys(sub, f"{path}."))
    return keys


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model of a field annotated ``Model`` or ``Model | None``."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def model_at(path: tuple[str | int, ...], model: type[BaseModel] = CellConfig) -> type[BaseModel] | None:
    """The pydantic model class found by following ``path`` from ``model``."""
    for part in path:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        sub = _submodel(field.annotation)
        if sub is None:
            return None
        model = sub
    return model
