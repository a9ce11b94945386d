"""GLISTER-Active: factorised gains against autograd, the one-step update, the greedy, validity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from benchmark.strategies.base import SelectionContext
from benchmark.strategies.glister import (
    Glister,
    _argmax,
    _sample_without_replacement,
    glister_select,
    head_logits,
    one_step_logits,
    residuals,
    taylor_gains,
    validation_gradient,
)

# --------------------------------------------------------------------------- helpers


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make_problem(seed: int, n: int = 40, n_lab: int = 15, c: int = 4, d: int = 6, bias: bool = True,
                 scale: float = 1.0) -> dict:
    """A random float64 last layer, unlabeled pool (probs from that layer) and labeled set."""
    g = gen(seed)
    head = nn.Linear(d, c, bias=bias).double()
    with torch.no_grad():
        head.weight.copy_(scale * torch.randn(c, d, generator=g, dtype=torch.float64))
        if bias:
            head.bias.copy_(torch.randn(c, generator=g, dtype=torch.float64))
    x_u = torch.randn(n, d, generator=g, dtype=torch.float64)
    x_l = torch.randn(n_lab, d, generator=g, dtype=torch.float64)
    y_l = torch.randint(0, c, (n_lab,), generator=g)
    with torch.no_grad():
        probs = torch.softmax(head(x_u), dim=1)
    return {"head": head, "x_u": x_u, "x_l": x_l, "y_l": y_l, "probs": probs}


def params(head: nn.Linear) -> list[torch.Tensor]:
    return [head.weight] + ([head.bias] if head.bias is not None else [])


def flat_grad(loss: torch.Tensor, head: nn.Linear) -> torch.Tensor:
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, params(head))])


def candidate_grads(head: nn.Linear, x_u: torch.Tensor) -> torch.Tensor:
    """(N, C*d [+ C]) autograd gradients of each candidate's cross-entropy at its predicted label."""
    rows = []
    for i in range(x_u.shape[0]):
        logits = head(x_u[i:i + 1])
        rows.append(flat_grad(F.cross_entropy(logits, logits.argmax(dim=1)), head))
    return torch.stack(rows)


def reference_glister(p: dict, k: int, eta: float, validation: str = "labeled",
                      labeled_step: bool = False) -> list[int]:
    """Dense GLISTER-ONLINE greedy with explicit parameters and autograd gradients (no factorisation)."""
    head = nn.Linear(p["head"].in_features, p["head"].out_features, bias=p["head"].bias is not None).double()
    head.load_state_dict(p["head"].state_dict())
    cand = candidate_grads(head, p["x_u"])  # at theta, as in DISTIL / CORDS
    hypothesised = p["probs"].argmax(dim=1)
    x_v, y_v = p["x_l"], p["y_l"]
    if validation == "pool":
        x_v, y_v = torch.cat([p["x_l"], p["x_u"]]), torch.cat([p["y_l"], hypothesised])
    flat = torch.cat([q.detach().flatten() for q in params(head)])

    def set_flat(v: torch.Tensor) -> None:
        with torch.no_grad():
            offset = 0
            for q in params(head):
                q.copy_(v[offset:offset + q.numel()].view_as(q))
                offset += q.numel()

    if labeled_step:
        flat = flat - eta * flat_grad(F.cross_entropy(head(p["x_l"]), p["y_l"], reduction="sum"), head)
        set_flat(flat)
    chosen: list[int] = []
    for _ in range(k):
        g_val = flat_grad(F.cross_entropy(head(x_v), y_v), head)
        gains = eta * (cand @ g_val)
        gains[chosen] = float("-inf")
        s = int(torch.argmax(gains))
        chosen.append(s)
        flat = flat - eta * cand[s]
        set_flat(flat)
    return chosen


def select(p: dict, k: int, eta: float = 0.1, seed: int = 0, **kw) -> list[int]:
    head = p["head"]
    bias = None if head.bias is None else head.bias.detach()
    return glister_select(p["probs"], p["x_u"], p["x_l"], p["y_l"], head.weight.detach(), bias, k, gen(seed),
                          eta=eta, **kw).tolist()


def gains_at(p: dict, eta: float) -> torch.Tensor:
    head = p["head"]
    bias = None if head.bias is None else head.bias.detach()
    logits = head_logits(p["x_l"], head.weight.detach(), bias)
    g_w, g_b = validation_gradient([(logits, p["x_l"], p["y_l"])], p["x_l"].shape[0], torch.float64)
    a = residuals(p["probs"], p["probs"].argmax(dim=1))
    return taylor_gains(a, p["x_u"], g_w, g_b if bias is not None else None, eta)


# --------------------------------------------------------------------------- gradients and gains


@pytest.mark.parametrize("bias", [True, False])
def test_validation_gradient_equals_autograd(bias: bool) -> None:
    p = make_problem(0, bias=bias)
    head = p["head"]
    b = None if head.bias is None else head.bias.detach()
    logits = head_logits(p["x_l"], head.weight.detach(), b)
    g_w, g_b = validation_gradient([(logits[:6], p["x_l"][:6], p["y_l"][:6]),
                                    (logits[6:], p["x_l"][6:], p["y_l"][6:])], 15, torch.float64)
    grads = torch.autograd.grad(F.cross_entropy(head(p["x_l"]), p["y_l"]), params(head))
    torch.testing.assert_close(g_w, grads[0])
    if bias:
        torch.testing.assert_close(g_b, grads[1])


@pytest.mark.parametrize("bias", [True, False])
def test_factorised_gain_equals_autograd_inner_product(bias: bool) -> None:
    p = make_problem(1, bias=bias)
    head, eta = p["head"], 0.3
    gains = gains_at(p, eta)
    g_val = flat_grad(F.cross_entropy(head(p["x_l"]), p["y_l"]), head)
    for i in (0, 7, 19, 33):
        logits = head(p["x_u"][i:i + 1])
        g_i = flat_grad(F.cross_entropy(logits, logits.argmax(dim=1)), head)
        torch.testing.assert_close(gains[i], eta * torch.dot(g_val, g_i))


def test_gain_is_the_first_order_increase_of_the_validation_log_likelihood() -> None:
    # sign and scale: LL_V(theta - eta g_i) - LL_V(theta) = gain_i + O(eta^2); the central difference
    # (LL_V(theta - eta g_i) - LL_V(theta + eta g_i)) / 2 cancels the second-order term
    p = make_problem(2)
    head, eta = p["head"], 1e-4
    gains = gains_at(p, eta)
    grads = candidate_grads(head, p["x_u"])
    c, d = head.out_features, head.in_features

    def ll(i: int, step: float) -> float:
        w = head.weight.detach() - step * grads[i, :c * d].view(c, d)
        b = head.bias.detach() - step * grads[i, c * d:]
        return -float(F.cross_entropy(F.linear(p["x_l"], w, b), p["y_l"]))

    for i in range(0, 40, 5):
        one_sided, central = ll(i, eta) - ll(i, 0.0), (ll(i, eta) - ll(i, -eta)) / 2
        assert abs(central - float(gains[i])) <= 1e-4 * abs(float(gains[i])) + 1e-13
        assert abs(one_sided - float(gains[i])) <= 0.2 * abs(float(gains[i])) + 1e-9
    assert (gains > 0).any() and (gains < 0).any()


@pytest.mark.parametrize("bias", [True, False])
def test_one_step_update_matches_a_manual_sgd_step(bias: bool) -> None:
    p = make_problem(3, bias=bias)
    head, eta, s = p["head"], 0.25, 11
    b = None if head.bias is None else head.bias.detach()
    logits = head_logits(p["x_l"], head.weight.detach(), b)
    a = residuals(p["probs"], p["probs"].argmax(dim=1))
    ours = one_step_logits(logits, p["x_l"], a[s], p["x_u"][s], eta, use_bias=bias)

    stepped = nn.Linear(head.in_features, head.out_features, bias=bias).double()
    stepped.load_state_dict(head.state_dict())
    optimizer = torch.optim.SGD(stepped.parameters(), lr=eta)
    out = stepped(p["x_u"][s:s + 1])
    F.cross_entropy(out, out.argmax(dim=1)).backward()
    optimizer.step()
    with torch.no_grad():
        torch.testing.assert_close(ours, stepped(p["x_l"]))


# --------------------------------------------------------------------------- greedy


def test_first_pick_is_the_argmax_gain() -> None:
    for seed in range(4):
        p = make_problem(10 + seed)
        assert select(p, 1)[0] == int(torch.argmax(gains_at(p, 0.1)))
        assert select(p, 5)[0] == int(torch.argmax(gains_at(p, 0.1)))


@pytest.mark.parametrize(("validation", "labeled_step", "bias"),
                         [("labeled", False, True), ("labeled", False, False), ("pool", False, True),
                          ("labeled", True, True), ("pool", True, True)])
def test_greedy_matches_the_dense_autograd_reference(validation: str, labeled_step: bool, bias: bool) -> None:
    # eta large enough that the one-step updates reorder the picks
    for seed in range(3):
        p = make_problem(20 + seed, n=30, bias=bias, scale=1.5)
        ours = select(p, 12, eta=0.5, validation=validation, labeled_step=labeled_step)
        assert ours == reference_glister(p, 12, 0.5, validation, labeled_step)


def test_the_online_update_changes_the_selection() -> None:
    # without the per-pick update GLISTER would be top-k of the initial gains; check it is not
    differs = False
    for seed in range(5):
        p = make_problem(30 + seed, n=30, scale=1.5)
        static = torch.argsort(gains_at(p, 0.5), descending=True)[:12].tolist()
        differs |= select(p, 12, eta=0.5) != static
    assert differs


def aligned_and_opposed() -> tuple[dict, int, int]:
    """Two classes; one validation sample of class 0 that the model puts in class 1. Candidate
    ``aligned`` (predicted 0, near it) moves the layer towards the truth, ``opposed`` (predicted 1,
    same embedding, a larger gradient) away from it; the rest are confident (zero gradient)."""
    d = 3
    head = nn.Linear(d, 2).double()
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64))
        head.bias.zero_()
    x_l = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    y_l = torch.tensor([0])
    probs = torch.tensor([[0.6, 0.4], [0.45, 0.55]] + [[1.0, 0.0]] * 6 + [[0.0, 1.0]] * 2, dtype=torch.float64)
    x_u = torch.cat([torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64),
                     torch.randn(8, d, generator=gen(0), dtype=torch.float64)])
    perm = torch.tensor([5, 2, 9, 0, 7, 3, 8, 1, 4, 6])  # aligned -> 3, opposed -> 7
    inverse = torch.argsort(perm)
    return ({"head": head, "x_u": x_u[inverse], "x_l": x_l, "y_l": y_l, "probs": probs[inverse]},
            int(perm[0]), int(perm[1]))


def test_aligned_candidate_is_picked_first_and_the_opposed_one_never() -> None:
    p, aligned, opposed = aligned_and_opposed()
    gains = gains_at(p, 0.1)
    assert gains[aligned] > 0 > gains[opposed]
    assert abs(float(gains[opposed])) > float(gains[aligned])  # a larger gradient, the wrong way
    order = select(p, 9)  # all but one: the opposed candidate is the one left out
    assert order[0] == aligned
    assert opposed not in order


# --------------------------------------------------------------------------- options


def test_stochastic_greedy_is_deterministic_and_exact_when_it_samples_everything() -> None:
    p = make_problem(40, n=60)
    exact = select(p, 10)
    # ceil(60 / 10 * ln(1 / eps)) >= 60 once eps <= e^-10: every remaining candidate is scored
    assert select(p, 10, epsilon=math.exp(-10.5), seed=3) == exact
    a, b = select(p, 10, epsilon=0.5, seed=3), select(p, 10, epsilon=0.5, seed=3)
    assert a == b and len(set(a)) == 10
    # 2 of the remaining scored per step, 40 steps: never a sample twice
    for seed in range(5):
        assert len(set(select(p, 40, epsilon=0.5, seed=seed))) == 40
    # 5 of 60 scored per step: some seed must miss the exact greedy's choices
    assert any(select(p, 10, epsilon=0.5, seed=s) != exact for s in range(5))


def test_random_fraction_keeps_the_greedy_prefix_and_fills_at_random() -> None:
    p = make_problem(41, n=50)
    exact = select(p, 20)
    mixed = select(p, 20, random_fraction=0.3)  # floor(6.0) random, 14 greedy
    assert mixed[:14] == exact[:14]
    assert len(set(mixed)) == 20
    assert not set(mixed[14:]) & set(mixed[:14])
    assert select(p, 20, random_fraction=0.3, seed=1)[14:] != mixed[14:]


def test_floyd_sampler_draws_distinct_uniform_subsets() -> None:
    g = gen(0)
    counts = np.zeros(20)
    for _ in range(2000):
        draw = _sample_without_replacement(20, 5, g)
        assert len(set(draw)) == 5 and all(0 <= v < 20 for v in draw)
        counts[draw] += 1
    assert np.all(np.abs(counts - 500) < 4 * np.sqrt(500))  # each value in 1/4 of the subsets
    assert sorted(_sample_without_replacement(7, 7, g)) == list(range(7))


def test_chunked_argmax_takes_the_first_of_tied_maxima_across_chunks() -> None:
    values = torch.zeros(50_000)
    values[[20_000, 35_000, 49_999]] = 1.0
    assert _argmax(values) == 20_000
    values[49_999] = 2.0
    assert _argmax(values) == 49_999
    assert _argmax(torch.full((40_000,), float("-inf"))) == 0


@pytest.mark.parametrize(("kw", "match"), [({"eta": 0.0}, "eta"), ({"validation": "test"}, "validation"),
                                           ({"epsilon": 1.0}, "epsilon"), ({"random_fraction": 1.0}, "random")])
def test_bad_options_are_refused(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        select(make_problem(42), 3, **kw)


def test_mismatched_shapes_are_refused() -> None:
    p = make_problem(43)
    with pytest.raises(ValueError, match="head weight"):
        glister_select(p["probs"], p["x_u"], p["x_l"], p["y_l"], torch.zeros(3, 6, dtype=torch.float64), None, 2,
                       gen(0))
    with pytest.raises(ValueError, match="labels"):
        glister_select(p["probs"], p["x_u"], p["x_l"], p["y_l"] + 10, p["head"].weight.detach(), None, 2, gen(0))


def test_float32_inputs_pick_the_same_as_float64() -> None:
    p = make_problem(44, n=200, n_lab=50, c=10, d=32)
    p32 = {key: (v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for key, v in p.items()}
    head = p["head"]
    ours32 = glister_select(p32["probs"], p32["x_u"], p32["x_l"], p["y_l"], head.weight.detach().float(),
                            head.bias.detach().float(), 20, gen(0)).tolist()
    assert ours32 == select(p, 20)


# --------------------------------------------------------------------------- the strategy


class FakeNetwork:
    def __init__(self, head: nn.Linear) -> None:
        self.head = head


class FakePool:
    """The part of PoolModel that GLISTER uses."""

    def __init__(self, p: dict, labeled_rows: torch.Tensor) -> None:
        self.p, self.labeled_rows = p, labeled_rows
        self.network = FakeNetwork(p["head"])

    @property
    def device(self) -> torch.device:
        return self.p["probs"].device

    def unlabeled_outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.p["probs"], self.p["x_u"]

    def labeled_outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        x_l = self.p["x_l"][self.labeled_rows]
        return torch.softmax(self.p["head"](x_l), dim=1).detach(), x_l

    def labeled_targets(self) -> torch.Tensor:
        return self.p["y_l"][self.labeled_rows]


def make_ctx(p: dict, n_labeled: int, seed: int = 0) -> SelectionContext:
    n = p["x_u"].shape[0]
    order = np.random.default_rng(99).permutation(n + n_labeled)
    unlabeled, labeled = np.sort(order[:n]), np.sort(order[n:])
    pool = FakePool(p, torch.arange(n_labeled))
    return SelectionContext(unlabeled, labeled, np.random.default_rng(seed), round_index=int(n_labeled > 0),
                            pool=pool)  # type: ignore[arg-type]


def assert_valid(picked: np.ndarray, ctx: SelectionContext, budget: int) -> None:
    assert picked.ndim == 1 and picked.dtype == np.int64
    assert len(picked) == min(budget, len(ctx.unlabeled))
    assert len(np.unique(picked)) == len(picked), "duplicates"
    assert set(picked.tolist()) <= set(ctx.unlabeled.tolist()), "not from the unlabeled pool"
    assert not set(picked.tolist()) & set(ctx.labeled.tolist()), "picked a labeled sample"


@pytest.mark.parametrize("budget", [0, 1, 7, 39, 40, 100])
def test_strategy_returns_valid_pool_indices(budget: int) -> None:
    p = make_problem(50)
    ctx = make_ctx(p, 15)
    picked = Glister().select(ctx, budget)
    assert_valid(picked, ctx, budget)
    if budget >= 40:
        assert sorted(picked.tolist()) == sorted(ctx.unlabeled.tolist())
    else:
        assert picked.tolist() == ctx.unlabeled[select(p, budget)].tolist()


def test_strategy_options_reach_the_selection() -> None:
    p = make_problem(51, n=30, scale=1.5)
    ctx_args = (p, 15)
    assert (Glister(eta=0.5, validation="pool").select(make_ctx(*ctx_args), 12).tolist()
            == make_ctx(*ctx_args).unlabeled[reference_glister(p, 12, 0.5, "pool")].tolist())


def test_empty_labeled_set_falls_back_to_a_seeded_random_draw() -> None:
    p = make_problem(52, n=40)
    picks = [Glister().select(make_ctx(p, 0, seed=s), 10) for s in (0, 0, 1)]
    for picked in picks:
        assert_valid(picked, make_ctx(p, 0), 10)
    assert picks[0].tolist() == picks[1].tolist()
    assert picks[0].tolist() != picks[2].tolist()
    expected = torch.randperm(40, generator=gen(int(np.random.default_rng(0).integers(2**62))))[:10]
    assert picks[0].tolist() == make_ctx(p, 0).unlabeled[expected.numpy()].tolist()
