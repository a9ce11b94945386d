"""The learner of one cell: its data on the training device, and a network built afresh every round.

:class:`CellData` holds the pool and test images where training happens; :class:`LearnerFactory` builds
a :class:`Learner` (the backbone from the cell's starting weights plus its auxiliary module, seeded by the
round) that trains on the labeled set, is tested, and shows the pool to the strategies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmark.cell_state import Weights
from benchmark.config import CellConfig
from benchmark.data import dataset_info
from benchmark.data.base import ImageDataset
from benchmark.data.loading import load_dataset
from benchmark.data.views import apply_view
from benchmark.errors import ConfigError
from benchmark.inputs import input_digests
from benchmark.models.base import build_backbone
from benchmark.pretrain import apply_backbone_state, initial_backbone_state
from benchmark.seeding import derive_seed, numpy_rng
from benchmark.strategies.pool_model import PoolModel
from benchmark.training import trainer
from benchmark.training.augment import Normalizer
from benchmark.training.aux import (
    AuxTraining,
    DiscriminatorModule,
    DiscriminatorTraining,
    FeatureTaps,
    build_loss_prediction,
)
from benchmark.training.execution import Execution
from benchmark.training.joint import JointModule
from benchmark.training.loop import AugmentationSpec, EpochCallback, TrainResult, make_optimizer
from benchmark.training.wasserstein import WassersteinCritic, WassersteinTraining


@dataclass(frozen=True)
class CellData:
    """The cell's dataset (after its view) with the pool and test split on the training device."""

    dataset: ImageDataset
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    normalize: Normalizer
    augmentation: AugmentationSpec
    execution: Execution

    @classmethod
    def load(cls, cfg: CellConfig, data_dir: Path, execution: Execution) -> CellData:
        device = torch.device(execution.device)
        data = load_dataset(cfg.dataset, data_dir)
        if cfg.view is not None:
            data = apply_view(data, cfg.view, cfg.seed)
        if cfg.budget.total > len(data.train_y):  # a view's pool size is not always known at validation
            raise ConfigError(f"budget: {cfg.budget.total} labels, but the pool of '{cfg.dataset}' with view "
                              f"{cfg.view.model_dump() if cfg.view else None} has only {len(data.train_y)} images; "
                              "lower budget.rounds or budget.query")
        info = dataset_info(cfg.dataset)
        return cls(data, data.train_x.to(device), data.train_y.to(device), data.test_x.to(device),
                   data.test_y.to(device), Normalizer(data.mean, data.std, device),
                   AugmentationSpec(info["crop_padding"], info["hflip"]), execution)

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    @property
    def pool_size(self) -> int:
        return int(self.train_x.shape[0])

    def pool_labels(self) -> np.ndarray:
        """Every pool label, for the strategies that need them (initial_strategy: balanced, seed 004 l.203)."""
        return self.dataset.train_y.cpu().numpy()

    def unlabeled(self, labeled: np.ndarray) -> np.ndarray:
        return np.setdiff1d(np.arange(self.pool_size), labeled, assume_unique=True)

    def indices(self, positions: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(positions, device=self.device)


@dataclass
class Learner:
    """A backbone and its auxiliary module (training.aux), for one round."""

    model: nn.Module
    aux: JointModule | None
    data: CellData
    cfg: CellConfig
    task = "classification"  # benchmark.detection.learner.DetectionLearner: "detection"

    def load_weights(self, weights: Weights) -> None:
        """Continue from the previous round's weights (training.start: warm)."""
        self.model.load_state_dict(weights["model"])
        if self.aux is not None:
            self.aux.load_state_dict(weights["aux"])

    def weights(self) -> Weights:
        """CPU copies of the weights, for the next round's warm start and the checkpoint."""
        return {"model": _cpu_copy(self.model.state_dict()),
                "aux": _cpu_copy(self.aux.state_dict()) if self.aux is not None else {}}

    def train(self, labeled: np.ndarray, pseudo_index: np.ndarray, pseudo_label: np.ndarray, round_index: int,
              on_epoch: EpochCallback, purpose: str = "train") -> TrainResult:
        """Train on the labeled set plus this round's pseudo-labeled samples, seeded by the round."""
        cfg, data = self.cfg, self.data
        generator = torch.Generator(device=data.device)
        generator.manual_seed(derive_seed(cfg.seed, round_index, purpose))
        torch.manual_seed(derive_seed(cfg.seed, round_index, purpose))
        # the unlabeled images, for the modules and the semi-supervised training that train on them
        unlabeled_images = None
        if cfg.training.semi != "none" or (self.aux is not None and self.aux.pairs_unlabeled):
            unlabeled_images = data.train_x[data.indices(data.unlabeled(labeled))]
        if self.aux is not None:
            self.aux.start_round(unlabeled_images, len(labeled))  # WAAL's gamma = |L| / |U|
        idx = data.indices(np.concatenate([labeled, pseudo_index]))
        targets = torch.cat([data.train_y[data.indices(labeled)], data.indices(pseudo_label)])
        pool_images = unlabeled_images if cfg.training.semi != "none" else None
        return trainer.train(self.model, data.train_x[idx], targets, cfg.training, data.normalize, data.augmentation,
                     generator, on_epoch, self.aux, data.execution, pool_images=pool_images)

    def evaluate(self) -> dict[str, float]:
        data = self.data
        return trainer.evaluate(self.model, data.test_x, data.test_y, data.normalize, data.dataset.num_classes,
                        data.execution)

    def pool(self, unlabeled: np.ndarray, labeled: np.ndarray) -> PoolModel:
        """The network as the strategies see it, over these unlabeled and labeled pool positions."""
        data = self.data
        return PoolModel(self.model, data.train_x, data.train_y, data.normalize, data.indices(unlabeled),
                         data.indices(labeled), self.cfg.seed, self.aux, data.execution)


@dataclass
class LearnerFactory:
    """Fresh learners of a cell, all starting from the cell's backbone weights (training.init)."""

    cfg: CellConfig
    data: CellData
    init_state: dict[str, torch.Tensor] | None  # the backbone without its head; None: random (scratch)

    @classmethod
    def for_cell(cls, cfg: CellConfig, data: CellData, cache_dir: Path, weights_dir: Path) -> LearnerFactory:
        """Resolve the starting weights once (imagenet, self-supervised pre-training, a checkpoint)."""
        init_state = None
        if cfg.init != "scratch":
            dataset = data.dataset
            init_state = initial_backbone_state(
                cfg.init, cfg.backbone, dataset, data.augmentation.hflip, cfg.seed, cfg.pretraining,
                cache_dir=cache_dir, weights_dir=weights_dir, device=data.device, execution=data.execution,
                # the content digest of a dataset by path: a rewritten file must not reuse the old pre-training
                dataset_key=json.dumps([cfg.dataset, cfg.view.model_dump() if cfg.view else None,
                                        input_digests({"dataset": cfg.dataset}).get("dataset")]))
        return cls(cfg, data, init_state)

    def build(self, round_index: int, purpose: str = "init") -> Learner:
        """A freshly initialised backbone (its classifier head always random), seeded by ``round_index``,
        and its auxiliary module when training.aux asks for one."""
        cfg, data = self.cfg, self.data
        torch.manual_seed(derive_seed(cfg.seed, round_index, purpose))
        model = build_backbone(cfg.backbone, data.dataset.num_classes, data.dataset.channels,
                               cfg.training.head_dropout or 0.0, cfg.training.conv_dropout or 0.0).to(data.device)
        if self.init_state is not None:
            apply_backbone_state(model, self.init_state)
        model = data.execution.prepare_model(model)
        return Learner(model, self._aux_module(model), data, cfg)

    def train_candidate(self) -> tuple[np.ndarray, Learner, float]:
        """The candidate baseline (config.CandidateConfig): a random subset of the pool, a network trained on it
        for candidate.epochs from the cell's starting weights, and its training seconds. Seeded apart from the
        rounds, so the rounds' networks are those of the same cell without a candidate."""
        cfg, candidate = self.cfg, self.cfg.candidate
        assert candidate is not None and candidate.epochs is not None
        rng = numpy_rng(cfg.seed, 0, "candidate")
        subset = np.sort(rng.choice(self.data.pool_size, candidate.subset, replace=False)).astype(np.int64)
        learner = self.build(0, purpose="candidate-init")
        learner.cfg = cfg.model_copy(update={"training": cfg.training.model_copy(
            update={"epochs": candidate.epochs})})
        empty = np.empty(0, np.int64)
        result = learner.train(subset, empty, empty, 0, lambda *_: None, purpose="candidate-train")
        return subset, learner, result.seconds

    def _aux_module(self, model: nn.Module) -> JointModule | None:
        training, device = self.cfg.training, self.data.device
        assert training.aux_weight is not None
        if training.aux == "discriminator":
            return DiscriminatorTraining(DiscriminatorModule(model.embedding_dim).to(device), training.aux_weight)
        if training.aux == "wasserstein":
            critic = WassersteinCritic(model.embedding_dim).to(device)
            # the critic's own optimizer, with the model's settings as in the official WAAL code
            return WassersteinTraining(critic, training.aux_weight,
                                       make_optimizer(list(critic.parameters()), training.optimizer))
        if training.aux == "loss_prediction":
            assert training.aux_detach_epoch is not None
            example = self.data.normalize(self.data.train_x[:1])
            return AuxTraining(build_loss_prediction(model, example), FeatureTaps(model),  # type: ignore[arg-type]
                               training.aux_weight, training.aux_margin, training.aux_detach_epoch)
        return None


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in state.items()}
