"""Bayesian acquisition under MC dropout: BALD, BatchBALD, mean STD and variation ratio.

Every function here takes ``mc_probs``, the softmax outputs of ``T`` stochastic forward
passes with only the dropout layers active (MC dropout, Gal & Ghahramani 2016), shaped
``[T, N, C]`` as :meth:`PoolModel.mc_dropout_probs` returns them. Inputs may be torch
tensors on any device or numpy arrays; the work runs on the input's device in float64
and scores come back as float64 numpy arrays of length ``N``, highest = most wanted.
The float64 copies are made block by block of samples (about ``_CHUNK_ELEMENTS`` at a
time), never of the whole ``[T, N, C]`` stack.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from benchmark.strategies.base import SelectionContext, Strategy
from benchmark.strategies.uncertainty import select_by_scores

DEFAULT_PASSES = 20
DEFAULT_NUM_SAMPLES = 10_000
# elements of a float64 intermediate per chunk (128 MiB): bounds memory on large pools
_CHUNK_ELEMENTS = 1 << 24

ArrayLike = torch.Tensor | np.ndarray


def _checked(mc_probs: ArrayLike) -> torch.Tensor:
    """``mc_probs`` as a [T, N, C] tensor in its own dtype (no copy where torch can share the memory)."""
    t = torch.as_tensor(mc_probs)
    if t.ndim != 3:
        raise ValueError(f"mc_probs must be [passes, samples, classes], got shape {tuple(t.shape)}")
    if t.shape[0] < 1:
        raise ValueError("mc_probs needs at least one pass")
    return t


def _row_chunks(t: torch.Tensor) -> list[tuple[int, int]]:
    """[start, stop) ranges over dim 1 of a [T, N, C] tensor, each about _CHUNK_ELEMENTS large."""
    n = t.shape[1]
    step = max(1, _CHUNK_ELEMENTS // max(1, t.shape[0] * t.shape[2]))
    return [(s, min(n, s + step)) for s in range(0, n, step)]


def _float64_chunks(t: torch.Tensor) -> Iterator[torch.Tensor]:
    """The [T, n, C] blocks of samples of :func:`_row_chunks`, each converted to float64 on its own."""
    for s, e in _row_chunks(t):
        yield t[:, s:e].to(torch.float64)


def _entropy(p: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Shannon entropy along ``dim``, 0 log 0 = 0."""
    return -torch.special.xlogy(p, p).sum(dim=dim)


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


@torch.no_grad()
def bald_scores(mc_probs: ArrayLike) -> np.ndarray:
    """BALD: mutual information I[y; w | x] = H[mean_t p_t] - mean_t H[p_t].

    Houlsby, Huszar, Ghahramani & Lengyel 2011, "Bayesian Active Learning for
    Classification and Preference Learning"; with MC dropout as the posterior:
    Gal, Islam & Ghahramani 2017, "Deep Bayesian Active Learning with Image Data".
    High when the passes are individually confident but disagree; 0 when they agree,
    however uncertain each one is.
    """
    out = [_entropy(chunk.mean(dim=0)) - _entropy(chunk).mean(dim=0) for chunk in _float64_chunks(_checked(mc_probs))]
    return _to_numpy(torch.cat(out)) if out else np.zeros(0)


@torch.no_grad()
def conditional_entropies(mc_probs: ArrayLike) -> np.ndarray:
    """E_w H[y | x, w] = mean_t H[p_t], the expected entropy BALD subtracts."""
    out = [_entropy(chunk).mean(dim=0) for chunk in _float64_chunks(_checked(mc_probs))]
    return _to_numpy(torch.cat(out)) if out else np.zeros(0)


@torch.no_grad()
def mean_std_scores(mc_probs: ArrayLike) -> np.ndarray:
    """Mean STD: mean over classes of the standard deviation over passes of p(y=c | x, w_t).

    Kampffmeyer, Salberg & Jenssen 2016, "Semantic Segmentation of Small Objects and
    Modeling of Uncertainty in Urban Remote Sensing Images Using Deep Convolutional
    Neural Networks": sigma_c = sqrt(E[p_c^2] - E[p_c]^2), the population standard
    deviation over the ``T`` passes (no Bessel correction), averaged over the classes.
    """
    out = [chunk.std(dim=0, correction=0).mean(dim=1) for chunk in _float64_chunks(_checked(mc_probs))]
    return _to_numpy(torch.cat(out)) if out else np.zeros(0)


@torch.no_grad()
def var_ratio_scores(mc_probs: ArrayLike) -> np.ndarray:
    """Variation ratio 1 - f_mode / T, f_mode = passes whose argmax is the modal class.

    Freeman 1965, "Elementary Applied Statistics"; as an acquisition function under MC
    dropout in Gal, Islam & Ghahramani 2017. Each pass votes for its argmax class (ties
    inside a pass go to the lower class index); 0 when all passes vote alike.
    """
    t = _checked(mc_probs)
    passes, _, c = t.shape
    out = []
    for chunk in _float64_chunks(t):
        votes = torch.nn.functional.one_hot(chunk.argmax(dim=2), c).sum(dim=0)  # [n, C]
        out.append(1.0 - votes.max(dim=1).values.to(torch.float64) / passes)
    return _to_numpy(torch.cat(out)) if out else np.zeros(0)


# --------------------------------------------------------------------------- BatchBALD


def _torch_generator(generator: torch.Generator | np.random.Generator | int | None,
                     device: torch.device) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, np.random.Generator):
        seed = int(generator.integers(2**63 - 1))
    else:
        seed = 0 if generator is None else int(generator)
    return torch.Generator(device=device).manual_seed(seed)


def _candidate_chunk(rows: int, classes: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(1, rows * classes))


def _exact_joint_entropy(joint: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """H[y_1..y_n, y_x] for each candidate x, summing over every label configuration.

    ``joint`` [C^n, K]: p(y_1..y_n = config | w_k), the product of the batch members'
    per-pass probabilities; ``cand`` [N, K, C]. p(config, y_x = c) = mean_k joint * p_x.
    """
    rows, k = joint.shape
    n, _, c = cand.shape
    out = []
    step = _candidate_chunk(rows, c)
    for s in range(0, n, step):
        block = cand[s:s + step]  # [b, K, C]
        q = joint @ block.permute(1, 0, 2).reshape(k, -1) / k  # [rows, b*C]
        out.append(_entropy(q.reshape(rows, -1, c), dim=2).sum(dim=0))
    return torch.cat(out) if out else cand.new_zeros(0)


def _sampled_joint_entropy(log_joint: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """Importance-sampled H[y_1..y_n, y_x] (Kirsch et al. 2019, section 3.3 / appendix).

    ``log_joint`` [M, K]: log p(y^(m) | w_k) of M configurations y^(m) drawn from
    p(y_1..y_n) = mean_k p(y | w_k). With q_m(c) = p(y^(m), y_x = c) and r_m = p(y^(m)):
    H ~ -1/M sum_m sum_c (q_m(c) / r_m) log q_m(c). Each row is rescaled by its largest
    entry before exponentiating (the ratio is scale free, the log gets the shift back),
    so long batches do not underflow.
    """
    m, k = log_joint.shape
    n, _, c = cand.shape
    shift = log_joint.max(dim=1, keepdim=True).values  # finite: y^(m) was drawn from some w_k
    scaled = torch.exp(log_joint - shift)  # [M, K]
    r = scaled.mean(dim=1, keepdim=True)  # [M, 1]
    out = []
    step = _candidate_chunk(m, c)
    for s in range(0, n, step):
        block = cand[s:s + step]
        q = (scaled @ block.permute(1, 0, 2).reshape(k, -1) / k).reshape(m, -1, c)  # [M, b, C]
        # sum_c (q / r) (log q + shift) = (sum_c q log q + shift sum_c q) / r
        terms = (torch.special.xlogy(q, q).sum(dim=2) + shift * q.sum(dim=2)) / r  # [M, b]
        out.append(-terms.mean(dim=0))
    return torch.cat(out) if out else cand.new_zeros(0)


def _sample_configurations(batch: torch.Tensor, num_samples: int, generator: torch.Generator) -> torch.Tensor:
    """log p(y^(m) | w_k) [M, K] for M label configurations of the batch drawn from its joint.

    As the authors' code does, M // K configurations are drawn from each pass's
    p(y | w_k) (a stratified draw from the mixture over passes), so M is rounded down to
    a multiple of K (at least K).
    """
    n, k, c = batch.shape
    per_pass = max(1, num_samples // k)
    dev = generator.device
    draws = torch.multinomial(batch.reshape(n * k, c).to(dev), per_pass, replacement=True, generator=generator)
    labels = draws.to(batch.device).reshape(n, k * per_pass)  # config m = (pass, draw), k-major
    logp = torch.log(batch)  # [n, K, C]
    m = labels.shape[1]
    log_joint = batch.new_zeros(k, m)
    step = max(1, _CHUNK_ELEMENTS // (k * m))
    for s in range(0, n, step):
        idx = labels[s:s + step, None, :].expand(-1, k, -1)  # [b, K, M]
        log_joint += torch.gather(logp[s:s + step], 2, idx).sum(dim=0)
    return log_joint.T.contiguous()  # [M, K]


def _batch_product(batch: torch.Tensor) -> torch.Tensor:
    """[C^n, K] per-pass probabilities of every label configuration of the batch (n may be 0)."""
    n, k, _ = batch.shape
    joint = batch.new_ones(1, k)
    for i in range(n):
        joint = (joint[:, None, :] * batch[i].T[None, :, :]).reshape(-1, k)
    return joint


@torch.no_grad()
def exact_joint_entropy(batch_probs: ArrayLike, cand_probs: ArrayLike) -> np.ndarray:
    """H[y_batch, y_x] for each candidate by full enumeration; probs are [n, K, C] and [N, K, C]."""
    batch = torch.as_tensor(batch_probs).to(torch.float64)
    cand = torch.as_tensor(cand_probs).to(batch.device, torch.float64)
    return _to_numpy(_exact_joint_entropy(_batch_product(batch), cand))


@torch.no_grad()
def sampled_joint_entropy(batch_probs: ArrayLike, cand_probs: ArrayLike, num_samples: int = DEFAULT_NUM_SAMPLES,
                          generator: torch.Generator | np.random.Generator | int | None = 0) -> np.ndarray:
    """H[y_batch, y_x] for each candidate from ``num_samples`` sampled batch configurations."""
    batch = torch.as_tensor(batch_probs).to(torch.float64)
    cand = torch.as_tensor(cand_probs).to(batch.device, torch.float64)
    gen = _torch_generator(generator, batch.device)
    return _to_numpy(_sampled_joint_entropy(_sample_configurations(batch, num_samples, gen), cand))


def default_candidates(budget: int) -> int:
    return max(10 * budget, 1000)


@torch.no_grad()
def batchbald_select(mc_probs: ArrayLike, budget: int,
                     generator: torch.Generator | np.random.Generator | int | None = 0,
                     num_samples: int = DEFAULT_NUM_SAMPLES, candidates: int | None = None) -> np.ndarray:
    """BatchBALD: greedily grow the batch that maximises I[y_1..y_b; w] (Kirsch, van Amersfoort & Gal
    2019, "BatchBALD: Efficient and Diverse Batch Acquisition for Deep Bayesian Active Learning").

    Step n adds the candidate x maximising H[y_1..y_n, y_x] - sum_i E_w H[y_i | w] - E_w H[y_x | w]
    (the batch's own conditional entropies are common to all candidates). The joint entropy is
    computed as the authors' code does:

    * exactly while the C^n label configurations of the current batch fit in ``num_samples``:
      a [C^n, T] table of per-pass probabilities p(config | w_t), extended by one factor per
      acquired sample;
    * beyond that by importance sampling: ``num_samples`` configurations (rounded down to a
      multiple of T) are drawn afresh at every step from the batch's joint, and
      H ~ -1/M sum_m sum_c p(y^(m), c) / p(y^(m)) log p(y^(m), c).

    Simplification (also the authors'): only the ``candidates`` samples with the highest BALD
    score are considered (default max(10 x budget, 1000)), bounding each step's cost at
    candidates x M x T x C. Ties go to the higher BALD score, then the earlier position. Returns
    positions into the N samples of ``mc_probs`` [T, N, C], in acquisition order.
    """
    t = _checked(mc_probs)
    passes, n_pool, c = t.shape
    k = min(budget, n_pool)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if k == n_pool:
        return np.arange(n_pool, dtype=np.int64)
    n_cand = max(k, candidates if candidates is not None else default_candidates(budget))
    bald = bald_scores(t)
    cand_pos = np.argsort(-bald, kind="stable")[: min(n_cand, n_pool)].astype(np.int64)
    cand = t[:, torch.as_tensor(cand_pos, device=t.device)]  # only the candidates are converted to float64
    cand = cand.permute(1, 0, 2).to(torch.float64).contiguous()  # [N', K, C]
    cond = _entropy(cand).mean(dim=1)  # [N']
    gen = _torch_generator(generator, t.device)

    chosen: list[int] = []
    available = torch.ones(len(cand_pos), dtype=torch.bool, device=t.device)
    joint: torch.Tensor | None = cand.new_ones(1, passes)  # the exact [C^n, T] table while it fits
    for _ in range(k):
        if joint is not None:
            h = _exact_joint_entropy(joint, cand)
        else:
            h = _sampled_joint_entropy(_sample_configurations(cand[chosen], num_samples, gen), cand)
        score = torch.where(available, h - cond, torch.full_like(h, -torch.inf))
        best = int(torch.argmax(score))  # the first maximum: the higher BALD score wins ties
        chosen.append(best)
        available[best] = False
        if joint is not None:
            fits = joint.shape[0] * c <= num_samples
            joint = (joint[:, None, :] * cand[best].T[None, :, :]).reshape(-1, passes) if fits else None
    return cand_pos[np.asarray(chosen, dtype=np.int64)]


# --------------------------------------------------------------------------- strategies


class _MCDropoutStrategy(Strategy):

    def __init__(self, passes: int = DEFAULT_PASSES) -> None:
        if passes < 1:
            raise ValueError(f"MC dropout needs at least one pass, got {passes}")
        self.passes = passes

    def mc_probs(self, ctx: SelectionContext) -> torch.Tensor:
        probs = ctx.require_pool().mc_dropout_probs(self.passes)
        if probs.shape[1] != len(ctx.unlabeled):
            raise RuntimeError("MC-dropout probabilities are not aligned with the unlabeled pool")
        return probs


class _MCScoreStrategy(_MCDropoutStrategy):
    @staticmethod
    def scores(mc_probs: ArrayLike) -> np.ndarray:
        raise NotImplementedError

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        if budget >= len(ctx.unlabeled):  # the whole pool: no passes needed
            return np.asarray(ctx.unlabeled, dtype=np.int64).copy()
        return select_by_scores(ctx.unlabeled, self.scores(self.mc_probs(ctx)), budget)


class BALD(_MCScoreStrategy):
    """Highest mutual information between label and weights (Houlsby et al. 2011; Gal et al. 2017)."""

    name = "bald"
    scores = staticmethod(bald_scores)


class MeanSTD(_MCScoreStrategy):
    """Highest mean over classes of the MC-dropout standard deviation (Kampffmeyer et al. 2016)."""

    name = "mean_std"
    scores = staticmethod(mean_std_scores)


class VariationRatio(_MCScoreStrategy):
    """Highest variation ratio of the MC-dropout votes (Freeman 1965; Gal et al. 2017)."""

    name = "var_ratio"
    scores = staticmethod(var_ratio_scores)


class BatchBALD(_MCDropoutStrategy):
    """Greedy joint mutual information of the batch (Kirsch et al. 2019); see :func:`batchbald_select`."""

    name = "batchbald"

    def __init__(self, passes: int = DEFAULT_PASSES, num_samples: int = DEFAULT_NUM_SAMPLES,
                 candidates: int | None = None) -> None:
        super().__init__(passes)
        self.num_samples, self.candidates = num_samples, candidates

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        if budget >= len(ctx.unlabeled):
            return np.asarray(ctx.unlabeled, dtype=np.int64).copy()
        positions = batchbald_select(self.mc_probs(ctx), budget, ctx.rng, self.num_samples, self.candidates)
        return np.asarray(ctx.unlabeled, dtype=np.int64)[positions]
