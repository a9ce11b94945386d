"""VAAL (Sinha et al. 2019): networks, adversarial training, selection and the strategy contract on toy pools."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.strategies.base import SelectionContext
from benchmark.strategies.random import random_selection
from benchmark.strategies.vaal import (
    VAAL,
    VAE,
    Discriminator,
    VAALParams,
    downsamplings,
    train_vaal,
    vaal_scores,
    vaal_select,
    vae_sample_losses,
)

# small networks: every test runs in well under a second on a CPU
SMALL = {"latent_dim": 8, "width": 8, "disc_hidden": 32, "disc_depth": 2, "batch_size": 32}


pytestmark = pytest.mark.usefixtures("one_thread")


def toy_pool(n_labeled: int = 40, n_bright: int = 60, n_dark: int = 60,
             seed: int = 0) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]:
    """(uint8 images N x 1 x 8 x 8, labeled, unlabeled, is_dark): the labeled images are all bright,
    the unlabeled ones bright and dark, interleaved."""
    rng = np.random.default_rng(seed)
    n_bright_total = n_labeled + n_bright
    bright = rng.integers(170, 256, size=(n_bright_total, 1, 8, 8))
    dark = rng.integers(0, 86, size=(n_dark, 1, 8, 8))
    images = np.concatenate([bright, dark]).astype(np.uint8)
    is_dark = np.r_[np.zeros(n_bright_total, bool), np.ones(n_dark, bool)]
    order = rng.permutation(len(images))  # bright and dark spread over the pool indices
    images, is_dark = images[order], is_dark[order]
    bright_idx = np.flatnonzero(~is_dark)
    labeled = np.sort(rng.choice(bright_idx, n_labeled, replace=False))
    unlabeled = np.setdiff1d(np.arange(len(images)), labeled)
    return torch.from_numpy(images), labeled, unlabeled, is_dark


class FakePool:
    """What VAAL uses of a PoolModel: the pool's uint8 images, ``normalize``, the device and the seed."""

    def __init__(self, images: torch.Tensor, unlabeled: np.ndarray, labeled: np.ndarray) -> None:
        self.images = images
        self.unlabeled_index = torch.as_tensor(unlabeled, dtype=torch.long)
        self.labeled_index = torch.as_tensor(labeled, dtype=torch.long)
        self.seed = 0
        self.calls = 0

    @property
    def device(self) -> torch.device:
        return self.images.device

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return (batch.float() - 127.5) / 64.0


def context(pool: FakePool | None, unlabeled: np.ndarray, labeled: np.ndarray, seed: int = 0,
            round_index: int = 1) -> SelectionContext:
    return SelectionContext(unlabeled, labeled, np.random.default_rng(seed), round_index=round_index,
                            pool=pool)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- networks


@pytest.mark.parametrize(("channels", "size", "latent", "layers"), [(1, 8, 16, 1), (3, 32, 64, 3), (1, 28, 32, 2)])
def test_vae_and_discriminator_shapes(channels: int, size: int, latent: int, layers: int) -> None:
    assert downsamplings(size) == layers
    vae = VAE(channels, size, latent_dim=latent, width=8)
    x = torch.randn(5, channels, size, size)
    recon, mu, logvar = vae(x)
    assert recon.shape == x.shape
    assert mu.shape == logvar.shape == (5, latent)
    assert vae.encode(x)[0].shape == (5, latent)
    assert vae.decode(mu).shape == x.shape
    # one stride-2 conv per halving: the last feature map is size / 2**layers on a side
    assert vae.feature_shape == (8 * 2 ** (layers - 1), size >> layers, size >> layers)
    disc = Discriminator(latent, hidden=16, depth=3)
    assert disc(mu).shape == (5,)
    assert sum(isinstance(m, torch.nn.Linear) for m in disc.modules()) == 4


def test_default_widths_follow_the_official_code() -> None:
    """github.com/sinhasam/vaal model.py: first conv 128 channels, doubling; z_dim 32; 4 x 512-unit MLP."""
    params = VAALParams()
    assert (params.width, params.latent_dim, params.disc_hidden, params.disc_depth) == (128, 32, 512, 4)
    assert VAAL().params == params
    vae = VAE(3, 32)
    convs = [m for m in vae.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [128, 256, 512]  # 32x32: three halvings (official: four)
    assert vae.fc_mu.out_features == vae.fc_logvar.out_features == 32
    assert [c.out_channels for c in VAE(1, 8).encoder.modules() if isinstance(c, torch.nn.Conv2d)] == [128]
    linears = [m for m in Discriminator().modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(32, 512)] + [(512, 512)] * 3 + [(512, 1)]


def test_vae_losses_per_sample() -> None:
    x = torch.zeros(3, 1, 2, 2)
    recon = torch.ones(3, 1, 2, 2)
    mu, logvar = torch.zeros(3, 4), torch.zeros(3, 4)
    rec, kl = vae_sample_losses(x, recon, mu, logvar)
    assert torch.allclose(rec, torch.full((3,), 4.0))  # summed over the 4 pixels
    assert torch.allclose(kl, torch.zeros(3))  # the prior itself
    kl2 = vae_sample_losses(x, recon, torch.ones(3, 4), torch.zeros(3, 4))[1]
    assert torch.allclose(kl2, torch.full((3,), 2.0))  # 0.5 * mu^2 per dimension


# --------------------------------------------------------------------------- training and selection


def test_training_reduces_vae_and_discriminator_losses() -> None:
    images, labeled, unlabeled, _ = toy_pool()
    result = train_vaal(images, torch.as_tensor(labeled), torch.as_tensor(unlabeled), seed=0,
                        params=VAALParams(**SMALL, iterations=150))
    h = result.history
    assert len(h["vae"]) == 300 and len(h["disc"]) == 150  # 2 VAE steps, 1 discriminator step per iteration
    assert np.mean(h["vae"][-10:]) < 0.5 * np.mean(h["vae"][:10])
    assert np.mean(h["reconstruction"][-10:]) < np.mean(h["reconstruction"][:10])
    # a blind discriminator scores 2 log 2 = 1.386 (labeled term + unlabeled term)
    assert np.mean(h["disc"][:5]) > 1.2
    assert np.mean(h["disc"][-20:]) < np.mean(h["disc"][:20]) - 0.2
    assert not result.vae.training and not result.discriminator.training


def test_vaal_prefers_the_unlike_labeled_images() -> None:
    images, labeled, unlabeled, is_dark = toy_pool()
    result = train_vaal(images, torch.as_tensor(labeled), torch.as_tensor(unlabeled), seed=1,
                        params=VAALParams(**SMALL, iterations=80))
    scores = vaal_scores(result.vae, result.discriminator, images, torch.as_tensor(unlabeled)).numpy()
    assert scores.shape == (len(unlabeled),)
    dark = is_dark[unlabeled]
    # the discriminator calls the dark (unlike-labeled) images less likely labeled than the bright ones
    assert np.median(scores[dark]) < np.median(scores[~dark])
    lowest = np.argsort(scores, kind="stable")[:30]
    assert dark[lowest].mean() >= 0.9  # the unlabeled pool is half dark: random would give ~0.5


def test_selection_is_the_lowest_scores() -> None:
    images, labeled, unlabeled, _ = toy_pool(n_bright=30, n_dark=30)
    params = VAALParams(**SMALL, iterations=10)
    lab, unl = torch.as_tensor(labeled), torch.as_tensor(unlabeled)
    pos = vaal_select(images, lab, unl, 25, seed=2, params=params).numpy()
    result = train_vaal(images, lab, unl, seed=2, params=params)
    scores = vaal_scores(result.vae, result.discriminator, images, unl, batch_size=7).numpy()  # chunked
    np.testing.assert_array_equal(pos, np.argsort(scores, kind="stable")[:25])
    assert scores[pos].max() <= np.delete(scores, pos).min()


def test_strategy_picks_dark_images_through_the_pool() -> None:
    images, labeled, unlabeled, is_dark = toy_pool(seed=3)
    pool = FakePool(images, unlabeled, labeled)
    chosen = VAAL(**SMALL, iterations=80).select(context(pool, unlabeled, labeled), 20)
    assert pool.calls > 0  # the pool's own normalisation is used
    assert is_dark[chosen].mean() >= 0.9


def test_deterministic_for_a_seed_and_seed_dependent() -> None:
    images, labeled, unlabeled, _ = toy_pool(n_bright=40, n_dark=40)
    params = VAALParams(**SMALL, iterations=15)
    runs = []
    for global_seed, s in ((1, 7), (2, 7), (3, 8)):
        torch.manual_seed(global_seed)  # the caller's RNG state plays no part
        runs.append(train_vaal(images, torch.as_tensor(labeled), torch.as_tensor(unlabeled), seed=s, params=params))
    assert runs[0].history == runs[1].history
    assert runs[0].history["vae"] != runs[2].history["vae"]
    strategy = VAAL(**SMALL, iterations=15)
    picks = [strategy.select(context(FakePool(images, unlabeled, labeled), unlabeled, labeled, seed=s), 17)
             for s in (4, 4)]
    np.testing.assert_array_equal(picks[0], picks[1])


def test_training_leaves_the_global_rng_alone() -> None:
    images, labeled, unlabeled, _ = toy_pool(n_bright=20, n_dark=20)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    train_vaal(images, torch.as_tensor(labeled), torch.as_tensor(unlabeled), seed=0,
               params=VAALParams(**SMALL, iterations=2))
    assert torch.equal(torch.get_rng_state(), before)


def test_iterations_follow_epochs_unless_given() -> None:
    params = VAALParams(batch_size=64, epochs=5)
    assert params.n_iterations(100, 1247) == 106  # ceil(5 * 1347 / 64)
    assert VAALParams(epochs=5, iterations=3).n_iterations(100, 1247) == 3
    assert VAAL().params.lr_vae == VAAL().params.lr_disc == 5e-4
    assert VAAL().params.beta == VAAL().params.adversary_weight == 1.0


# --------------------------------------------------------------------------- the strategy contract


@pytest.mark.parametrize("budget", [1, 13, 79])
def test_selection_is_valid(budget: int) -> None:
    images, labeled, unlabeled, _ = toy_pool(n_bright=40, n_dark=40, seed=5)
    chosen = VAAL(**SMALL, iterations=5).select(context(FakePool(images, unlabeled, labeled), unlabeled, labeled),
                                                budget)
    assert chosen.dtype == np.int64
    assert len(chosen) == budget
    assert len(np.unique(chosen)) == budget
    assert np.isin(chosen, unlabeled).all()


def test_budget_covering_the_pool_returns_it_without_training() -> None:
    images, labeled, unlabeled, _ = toy_pool(n_bright=10, n_dark=10)
    pool = FakePool(images, unlabeled, labeled)
    for budget in (len(unlabeled), len(unlabeled) + 50):
        chosen = VAAL(**SMALL, iterations=5).select(context(pool, unlabeled, labeled), budget)
        np.testing.assert_array_equal(np.sort(chosen), unlabeled)
    assert pool.calls == 0
    assert len(VAAL().select(context(pool, unlabeled, labeled), 0)) == 0


def test_empty_labeled_set_falls_back_to_seeded_random() -> None:
    images, _, _, _ = toy_pool(n_bright=20, n_dark=20)
    unlabeled = np.arange(len(images))
    labeled = np.empty(0, np.int64)
    pool = FakePool(images, unlabeled, labeled)
    chosen = VAAL(**SMALL, iterations=5).select(context(pool, unlabeled, labeled, seed=9, round_index=0), 12)
    expected = random_selection(unlabeled, 12, np.random.default_rng(9))
    np.testing.assert_array_equal(chosen, expected)
    assert pool.calls == 0  # nothing trained
    other = VAAL().select(context(pool, unlabeled, labeled, seed=10, round_index=0), 12)
    assert not np.array_equal(np.sort(other), np.sort(chosen))


def test_unlabeled_indices_need_not_be_contiguous() -> None:
    """A pool subset (pool_subset) leaves gaps: positions map back to the right pool indices."""
    images, labeled, unlabeled, is_dark = toy_pool(seed=11)
    subset = unlabeled[::2]
    chosen = VAAL(**SMALL, iterations=60).select(context(FakePool(images, subset, labeled), subset, labeled), 10)
    assert np.isin(chosen, subset).all() and len(np.unique(chosen)) == 10
    assert is_dark[chosen].mean() >= 0.8
