"""GLISTER-Active: greedy, validation-driven selection with a one-step Taylor approximation.

Killamsetty, Sivasubramanian, Ramakrishnan & Iyer (2021), "GLISTER: Generalization based Data
Subset Selection for Efficient and Robust Learning", AAAI 2021; its batch active-learning variant
GLISTER-ACTIVE as implemented in DISTIL (decile-team/distil, ``active_learning_strategies/glister.py``).

Objective. GLISTER picks the set ``S`` of unlabeled samples whose inclusion most increases the
log-likelihood of a validation set ``V`` after training on it. GLISTER-ONLINE replaces the inner
training by one gradient step on the **last linear layer** ``theta = (W, b)``, and the Taylor
approximation turns the marginal gain of a candidate ``e`` at the current parameters ``theta_S``
into an inner product of gradients:

    LL_V(theta_S - eta g_e) - LL_V(theta_S)  ~=  gain(e) = eta < grad L_V(theta_S), g_e >

where ``L_V = -LL_V`` is the mean cross-entropy of ``V`` and ``g_e`` the gradient of the
cross-entropy of ``e`` at its **hypothesised label** ``y_e = argmax_k p_ek`` (the model's
prediction, as GLISTER-ACTIVE and DISTIL use; both gradients are loss gradients, which equals the
paper's product of two log-likelihood gradients). The greedy algorithm picks
``e* = argmax gain(e)`` among the samples not chosen yet, then updates the last layer by one SGD
step on ``e*`` (``theta_S <- theta_S - eta g_e*``) and recomputes the validation gradient at the new
parameters, before the next pick. As in DISTIL (and CORDS), the candidates' gradients stay those at
the model's parameters ``theta``: only the validation gradient follows ``theta_S``.

Factorisation. For a softmax layer ``z = W x + b``, the cross-entropy gradient of a sample with
residual ``r = p - onehot(y)`` and embedding ``x`` is ``(r (x) x, r)`` for ``(W, b)``. So

    grad L_V(theta_S) = (G_W, G_b) = (R^T X_V / |V|, mean_v r_v)       (C x d and C; built each step)
    < grad L_V, g_e > = a_e^T (G_W x_e + G_b),   a_e = p_e - onehot(y_e)
    z_v <- z_v - eta ((x_v . x_e*) + 1) a_e*                            (the one-step update, on logits)

No per-sample ``C x d`` gradient is ever formed: a greedy step costs one ``(N x d) @ (d x C)``
product for the gains, one ``|V| x d`` mat-vec for the logits and one ``C x |V| x d`` product for
the validation gradient. The validation logits are computed once from the head
(``X_V W^T + b``, exact, no ``log p`` underflow) and then updated in float64.

What is implemented, and the choices made:

* ``validation="labeled"`` (default): ``V`` is the labeled set with its true labels. DISTIL's own
  default, when no validation set is passed, is the union of the labeled set and the unlabeled pool
  with hypothesised labels: ``validation="pool"`` (older DISTIL releases used the pseudo-labeled pool
  alone).
* ``labeled_step=False`` (default): the greedy starts from the trained model's parameters. DISTIL
  first moves the validation logits by one step on the *summed* gradient of the labeled set
  (``theta - eta sum_L g_l``), so that ``theta_S`` is one step on ``L u S``: ``labeled_step=True``.
* ``eta`` (default 0.1, the benchmark's default SGD learning rate; DISTIL and CORDS use the training
  learning rate): the step of the one-step updates. It does not change the first pick.
* The bias gradient is part of ``g`` when the head has a bias (DISTIL's ``bias_linear``).
* Regularisation: none by default; ``random_fraction=lambda`` is DISTIL's ``'Rand'`` option, which
  fills ``floor(lambda k)`` of the ``k`` slots uniformly at random from the samples the greedy did
  not pick. DISTIL's facility-location / diversity regularisers (an ``N x N`` kernel) are omitted.
* ``epsilon``: stochastic greedy (Mirzasoleiman et al. 2015, CORDS' ``'Stochastic'`` GLISTER):
  each step scores only ``ceil(N / k * ln(1 / epsilon))`` remaining candidates drawn uniformly;
  ``None`` (default) is the exact greedy. The paper's refresh period ``r`` is 1 (refresh every pick).
* Round 0 (validation set empty: no labeled samples with ``validation="labeled"``): there is no
  validation signal, so the selection is uniformly random, ``torch.randperm`` from the generator.
* ``budget >= N``: the whole pool, in pool order.

Cost (exact greedy): ``k`` passes over the ``N x d`` unlabeled embeddings; with
``validation="pool"`` about three per pick. On the CPU the element-wise work runs in row chunks
below ATen's parallel grain size so that a step opens few OpenMP regions (see ``badge.py``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from benchmark.strategies.base import SelectionContext, Strategy

DEFAULT_ETA = 0.1
VALIDATION_SETS = ("labeled", "pool")
_CHUNK = 8192
# Element-wise work on (rows x C) tensors runs in row chunks below ATen's parallel grain size (32,768
# elements) on the CPU: on a small, busy CPU every OpenMP region costs milliseconds (as in badge.py),
# and a greedy step would otherwise open a dozen. The GPU takes whole tensors.
_CPU_ELEMENTS = 16384


def _row_slices(rows: int, width: int, device: torch.device) -> list[slice]:
    step = max(1, rows if device.type != "cpu" else _CPU_ELEMENTS // max(1, width))
    return [slice(start, min(start + step, rows)) for start in range(0, rows, step)]


def residuals(probs: Tensor, labels: Tensor) -> Tensor:
    """``p - onehot(labels)``: the gradient of the cross-entropy w.r.t. the logits, in ``probs``' dtype."""
    r = probs.clone()
    r[torch.arange(r.shape[0], device=r.device), labels] -= 1.0
    return r


def _softmax_residuals(logits: Tensor, labels: Tensor) -> Tensor:
    """``softmax(logits) - onehot(labels)`` from element-wise ops only (no parallel softmax kernel)."""
    e = (logits - logits.amax(dim=1, keepdim=True)).exp_()
    e /= e.sum(dim=1, keepdim=True)
    return residuals(e, labels)


def head_logits(embeddings: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``X W^T + b`` in float64, in row chunks (no float64 copy of ``X``)."""
    w = weight.to(device=embeddings.device, dtype=torch.float64)
    b = None if bias is None else bias.to(device=embeddings.device, dtype=torch.float64)
    if embeddings.shape[0] == 0:
        return torch.zeros(0, weight.shape[0], dtype=torch.float64, device=embeddings.device)
    return torch.cat([torch.nn.functional.linear(chunk.to(torch.float64), w, b) for chunk in embeddings.split(_CHUNK)])


def validation_gradient(blocks: list[tuple[Tensor, Tensor, Tensor]], n_val: int,
                        dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Gradient ``(G_W, G_b)`` of the mean validation cross-entropy w.r.t. the head ``(W, b)``.

    ``blocks`` are ``(logits float64 (n, C), embeddings (n, d), labels (n,))`` whose rows together
    make up the validation set of size ``n_val``; returns ``G_W`` (C x d) and ``G_b`` (C) in ``dtype``.
    """
    c, d = blocks[0][0].shape[1], blocks[0][1].shape[1]
    device = blocks[0][0].device
    g_w = torch.zeros(c, d, dtype=dtype, device=device)
    g_b = torch.zeros(c, dtype=torch.float64, device=device)
    for logits, emb, labels in blocks:
        r = torch.empty(logits.shape[0], c, dtype=dtype, device=device)
        for rows in _row_slices(logits.shape[0], c, device):
            part = _softmax_residuals(logits[rows], labels[rows])
            g_b += part.sum(dim=0)
            r[rows] = part
        g_w.addmm_(r.T, emb.to(dtype))  # one C x n x d product per block
    return g_w / n_val, (g_b / n_val).to(dtype)


def gradient_dots(a: Tensor, emb: Tensor, g_w: Tensor, g_b: Tensor | None) -> Tensor:
    """``<(G_W, G_b), (a_i (x) x_i, a_i)>`` for every row: ``sum_c a_ic (x_i G_W^T + G_b)_c``."""
    h = emb @ g_w.T  # one (N x d) @ (d x C) product: the cost of a greedy step
    out = torch.empty(h.shape[0], dtype=h.dtype, device=h.device)
    for rows in _row_slices(h.shape[0], h.shape[1], h.device):
        part = h[rows]
        if g_b is not None:
            part += g_b
        torch.sum(part.mul_(a[rows]), dim=1, out=out[rows])
    return out


def taylor_gains(a: Tensor, emb: Tensor, g_w: Tensor, g_b: Tensor | None, eta: float) -> Tensor:
    """GLISTER's Taylor gains ``eta <grad L_V, g_i>``: the first-order increase of the validation
    log-likelihood (decrease of its mean loss) after one SGD step of size ``eta`` on sample ``i``."""
    return eta * gradient_dots(a, emb, g_w, g_b)


def one_step_logits(logits: Tensor, emb: Tensor, a_s: Tensor, x_s: Tensor, eta: float,
                    use_bias: bool = True) -> Tensor:
    """Logits ``X W'^T + b'`` after one SGD step ``(W', b') = (W, b) - eta (a_s (x) x_s, a_s)``
    on one sample with residual ``a_s`` and embedding ``x_s``: ``z - eta (X x_s + 1) (x) a_s``.
    Updates ``logits`` (float64) in place and returns it."""
    coef = (emb @ x_s.to(emb.dtype)).to(logits.dtype)
    if use_bias:
        coef += 1.0
    step = -eta * a_s.to(logits.dtype)
    for rows in _row_slices(logits.shape[0], logits.shape[1], logits.device):
        logits[rows].addr_(coef[rows], step)
    return logits


def _argmax(values: Tensor) -> int:
    """First position of the largest value (reduced chunk by chunk on the CPU)."""
    best, best_value = -1, float("-inf")
    for rows in _row_slices(values.shape[0], 1, values.device):
        value, index = torch.max(values[rows], dim=0)
        if best < 0 or float(value) > best_value:
            best, best_value = rows.start + int(index), float(value)
    return best


def _sample_without_replacement(population: int, m: int, generator: torch.Generator) -> list[int]:
    """``m`` distinct integers in ``[0, population)``, uniformly (Floyd's algorithm), from ``m``
    uniform draws of ``generator``: O(m) work however large the population."""
    u = torch.rand(m, generator=generator, device=generator.device, dtype=torch.float64).tolist()
    chosen: dict[int, None] = {}
    for draw, j in zip(u, range(population - m, population), strict=True):
        t = min(int(draw * (j + 1)), j)
        chosen[j if t in chosen else t] = None
    return list(chosen)


def _gather_rows(x: Tensor, index: Tensor) -> Tensor:
    step = max(1, _CPU_ELEMENTS // max(1, x.shape[1])) if x.device.type == "cpu" else max(1, index.numel())
    return torch.cat([x.index_select(0, index[i:i + step]) for i in range(0, index.numel(), step)])


def _check(unlabeled_probs: Tensor, unlabeled_emb: Tensor, labeled_emb: Tensor, labeled_y: Tensor,
           head_weight: Tensor, head_bias: Tensor | None, eta: float, validation: str,
           epsilon: float | None, random_fraction: float) -> None:
    if unlabeled_probs.ndim != 2 or unlabeled_emb.ndim != 2 or unlabeled_probs.shape[0] != unlabeled_emb.shape[0]:
        raise ValueError(f"unlabeled probs (N, C) and embeddings (N, d) must have the same N; got "
                         f"{tuple(unlabeled_probs.shape)} and {tuple(unlabeled_emb.shape)}")
    c, d = unlabeled_probs.shape[1], unlabeled_emb.shape[1]
    if tuple(head_weight.shape) != (c, d):
        raise ValueError(f"head weight must be (C, d) = {(c, d)}, got {tuple(head_weight.shape)}")
    if head_bias is not None and tuple(head_bias.shape) != (c,):
        raise ValueError(f"head bias must be (C,) = {(c,)}, got {tuple(head_bias.shape)}")
    if labeled_emb.ndim != 2 or labeled_emb.shape[1] != d or labeled_y.shape != (labeled_emb.shape[0],):
        raise ValueError(f"labeled embeddings (L, {d}) and labels (L,) do not match: "
                         f"{tuple(labeled_emb.shape)}, {tuple(labeled_y.shape)}")
    if labeled_y.numel() and (int(labeled_y.min()) < 0 or int(labeled_y.max()) >= c):
        raise ValueError(f"labels must lie in [0, {c})")
    if not eta > 0:
        raise ValueError(f"eta must be positive, got {eta}")
    if validation not in VALIDATION_SETS:
        raise ValueError(f"validation must be one of {VALIDATION_SETS}, got {validation!r}")
    if epsilon is not None and not 0 < epsilon < 1:
        raise ValueError(f"epsilon must lie in (0, 1), got {epsilon}")
    if not 0 <= random_fraction < 1:
        raise ValueError(f"random_fraction must lie in [0, 1), got {random_fraction}")
    for name, t in (("unlabeled probs", unlabeled_probs), ("unlabeled embeddings", unlabeled_emb),
                    ("labeled embeddings", labeled_emb), ("head", head_weight)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contain non-finite values")


def glister_select(unlabeled_probs: Tensor, unlabeled_emb: Tensor, labeled_emb: Tensor, labeled_y: Tensor,
                   head_weight: Tensor, head_bias: Tensor | None, budget: int, generator: torch.Generator,
                   eta: float = DEFAULT_ETA, validation: str = "labeled", labeled_step: bool = False,
                   epsilon: float | None = None, random_fraction: float = 0.0) -> Tensor:
    """GLISTER-Active: ``min(budget, N)`` distinct row positions of the unlabeled pool (int64, in the
    order chosen: the greedy picks first, then any random ones).

    ``unlabeled_probs`` (N, C) softmax outputs and ``unlabeled_emb`` (N, d) penultimate embeddings,
    rows aligned; ``labeled_emb`` (L, d) and ``labeled_y`` (L,) the labeled set; ``head_weight``
    (C, d) and ``head_bias`` (C,) or None the last linear layer that maps embeddings to logits;
    ``generator`` (on the tensors' device) supplies the random draws (round-0 fallback, stochastic
    greedy, ``random_fraction``). See the module docstring for the algorithm and the options.
    """
    _check(unlabeled_probs, unlabeled_emb, labeled_emb, labeled_y, head_weight, head_bias, eta, validation,
           epsilon, random_fraction)
    n, device = unlabeled_probs.shape[0], unlabeled_probs.device
    k = max(0, min(int(budget), n))
    if k == 0:
        return torch.empty(0, dtype=torch.int64, device=device)
    if k == n:
        return torch.arange(n, dtype=torch.int64, device=device)
    n_val = labeled_emb.shape[0] + (n if validation == "pool" else 0)
    if n_val == 0:
        # round 0: no validation set to generalise to, hence no gains; a seeded uniform draw
        return torch.randperm(n, generator=generator, device=device)[:k]

    dtype = torch.float64 if torch.float64 in (unlabeled_probs.dtype, unlabeled_emb.dtype) else torch.float32
    x_u = unlabeled_emb.to(dtype)
    x_l = labeled_emb.to(device=device, dtype=dtype)
    y_l = labeled_y.to(device=device, dtype=torch.int64)
    hypothesised = unlabeled_probs.argmax(dim=1)
    a = residuals(unlabeled_probs.to(dtype), hypothesised)
    use_bias = head_bias is not None

    # validation blocks: (logits float64, embeddings, labels); the logits follow theta_S
    blocks: list[tuple[Tensor, Tensor, Tensor]] = []
    if labeled_emb.shape[0]:
        blocks.append((head_logits(x_l, head_weight, head_bias), x_l, y_l))
    if validation == "pool":
        blocks.append((head_logits(x_u, head_weight, head_bias), x_u, hypothesised))
    if labeled_step and labeled_emb.shape[0]:
        # DISTIL: one step on the summed gradient of the labeled set (true labels) before the greedy
        r_l = _softmax_residuals(blocks[0][0], y_l)
        d_w, d_b = r_l.to(dtype).T @ x_l, r_l.sum(0)
        for logits, emb, _ in blocks:
            shift = (emb @ d_w.T).to(torch.float64)
            if use_bias:
                shift += d_b
            logits -= eta * shift

    n_random = math.floor(random_fraction * k)
    n_greedy = k - n_random
    positions = torch.empty(k, dtype=torch.int64, device=device)
    sample_size = n if epsilon is None else max(1, math.ceil(n / n_greedy * math.log(1.0 / epsilon)))
    remaining = list(range(n)) if sample_size < n else []  # stochastic greedy: swap-remove pool
    where = list(range(n)) if sample_size < n else []
    for step in range(n_greedy):
        g_w, g_b = validation_gradient(blocks, n_val, dtype)
        g_b_used = g_b if use_bias else None
        free = n - step
        if sample_size >= free:
            dots = gradient_dots(a, x_u, g_w, g_b_used)
            if step:
                dots.index_fill_(0, positions[:step], float("-inf"))
            s = _argmax(dots)
        else:
            candidates = torch.tensor([remaining[j] for j in _sample_without_replacement(free, sample_size,
                                                                                         generator)],
                                      dtype=torch.int64, device=device)
            dots = gradient_dots(_gather_rows(a, candidates), _gather_rows(x_u, candidates), g_w, g_b_used)
            s = int(candidates[_argmax(dots)])
        positions[step] = s
        if remaining:
            j, last = where[s], remaining[free - 1]
            remaining[j], where[last] = last, j
        for logits, emb, _ in blocks:
            one_step_logits(logits, emb, a[s], x_u[s], eta, use_bias)
    if n_random:
        picked = torch.zeros(n, dtype=torch.bool, device=device)
        picked[positions[:n_greedy]] = True
        free_positions = torch.nonzero(~picked).flatten()
        positions[n_greedy:] = free_positions[torch.randperm(free_positions.numel(), generator=generator,
                                                             device=device)[:n_random]]
    return positions


class Glister(Strategy):
    """GLISTER-Active (Killamsetty et al. 2021): greedy Taylor gains of the validation log-likelihood
    after one last-layer SGD step per pick; see :mod:`benchmark.strategies.glister`."""

    name = "glister"

    def __init__(self, eta: float = DEFAULT_ETA, validation: str = "labeled", labeled_step: bool = False,
                 epsilon: float | None = None, random_fraction: float = 0.0) -> None:
        self.eta, self.validation, self.labeled_step = eta, validation, labeled_step
        self.epsilon, self.random_fraction = epsilon, random_fraction

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        pool = ctx.require_pool()
        probs, embeddings = pool.unlabeled_outputs()
        if probs.shape[0] != len(ctx.unlabeled):
            raise RuntimeError("pool outputs are not aligned with the unlabeled pool")
        if len(ctx.labeled):
            labeled_emb, labeled_y = pool.labeled_outputs()[1], pool.labeled_targets()
        else:
            labeled_emb = embeddings.new_zeros(0, embeddings.shape[1])
            labeled_y = torch.zeros(0, dtype=torch.int64, device=embeddings.device)
        head = pool.network.head
        generator = ctx.torch_generator(pool.device)
        with torch.no_grad():
            positions = glister_select(probs, embeddings, labeled_emb, labeled_y, head.weight.detach(),
                                       None if head.bias is None else head.bias.detach(), budget, generator,
                                       eta=self.eta, validation=self.validation, labeled_step=self.labeled_step,
                                       epsilon=self.epsilon, random_fraction=self.random_fraction)
        return np.asarray(ctx.unlabeled)[positions.cpu().numpy()].astype(np.int64)
