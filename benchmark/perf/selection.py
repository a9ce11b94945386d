"""Time and memory of query selection at CIFAR scale, on generated data.

    python -m benchmark.perf.selection                       # N=50,000, d=512, C=10 and 100, budget 1,000
    python -m benchmark.perf.selection --device cuda --out perf.json

Each (strategy, C) runs in a fresh subprocess, so the reported peak memory is that
strategy's own: peak RSS minus the RSS after the inputs were generated (CPU), or
torch's peak allocated memory (CUDA). The dense reference implementations that
peer toolkits use (an N x N distance matrix for CoreSet, materialised C x d
gradient embeddings for BADGE) run beside ours at a smaller N where they fit,
for the speed ratio.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

MC_PASSES = 20


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def _inputs(n: int, d: int, c: int, labeled: int, device: str, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(n + labeled, d, generator=g)
    logits = 3.0 * torch.randn(n, c, generator=g)
    data = {"unlabeled_emb": emb[:n], "labeled_emb": emb[n:], "probs": torch.softmax(logits, dim=1),
            "labeled_y": torch.randint(0, c, (labeled,), generator=g)}
    return {k: v.to(device) for k, v in data.items()}


def _mc_probs(probs: torch.Tensor, seed: int = 1) -> torch.Tensor:
    g = torch.Generator(device=probs.device).manual_seed(seed)
    noise = torch.randn((MC_PASSES, *probs.shape), generator=g, device=probs.device)
    return torch.softmax(torch.log(probs.clamp_min(1e-12)) + noise, dim=2)


def _numpy(values: Any) -> np.ndarray:
    return values.cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


def _runner(name: str) -> Callable[[dict[str, torch.Tensor], int, torch.Generator], Any]:
    """The pure selection function of a strategy, called the way its class calls it."""
    from benchmark.strategies import uncertainty as u

    score_based = {"entropy": u.entropy_scores, "margin": u.margin_scores,
                   "least_confidence": u.least_confidence_scores}
    if name in score_based:
        score = score_based[name]
        return lambda x, k, g: u.top_k(score(x["probs"].cpu().numpy()), k)
    if name in ("coreset", "coreset_dense"):
        from benchmark.perf.dense_coreset import dense_kcenter_greedy
        from benchmark.strategies.diversity import coreset_select

        fn = coreset_select if name == "coreset" else dense_kcenter_greedy
        return lambda x, k, g: fn(x["unlabeled_emb"], x["labeled_emb"], k, g)
    if name in ("badge", "badge_dense"):
        from benchmark.perf.dense_badge import dense_badge_select
        from benchmark.strategies.badge import badge_select

        fn = badge_select if name == "badge" else dense_badge_select
        return lambda x, k, g: fn(x["probs"], x["unlabeled_emb"], k, g)
    if name == "kmeans":
        from benchmark.strategies.diversity import kmeans_select

        return lambda x, k, g: kmeans_select(x["unlabeled_emb"], k, g)
    if name == "typiclust":
        from benchmark.strategies.diversity import typiclust_select

        return lambda x, k, g: typiclust_select(x["unlabeled_emb"], x["labeled_emb"], k, g)
    if name == "probcover":
        from benchmark.strategies.diversity import probcover_select

        return lambda x, k, g: probcover_select(x["unlabeled_emb"], x["labeled_emb"], k, g)
    if name == "cluster_margin":
        from benchmark.strategies.cluster_margin import cluster_margin_select

        return lambda x, k, g: cluster_margin_select(x["probs"], x["unlabeled_emb"], k, g)
    if name in ("bald", "mean_std", "var_ratio"):
        from benchmark.strategies import bayesian

        score = getattr(bayesian, f"{name}_scores")
        return lambda x, k, g: u.top_k(_numpy(score(_mc_probs(x["probs"]))), k)
    if name == "batchbald":
        from benchmark.strategies.bayesian import batchbald_select

        return lambda x, k, g: batchbald_select(_mc_probs(x["probs"]), k, g)
    if name == "jlp":
        from benchmark.strategies.jlp import jlp_select

        return lambda x, k, g: jlp_select(x["unlabeled_emb"], x["labeled_emb"], k, g)
    if name == "glister":
        from benchmark.strategies.glister import glister_select

        def glister(x: dict[str, torch.Tensor], k: int, g: torch.Generator) -> Any:
            c, d = x["probs"].shape[1], x["unlabeled_emb"].shape[1]
            head = torch.nn.Linear(d, c).to(x["probs"].device)  # a random last layer, like the random inputs
            return glister_select(x["probs"], x["unlabeled_emb"], x["labeled_emb"], x["labeled_y"],
                                  head.weight.detach(), head.bias.detach(), k, g)

        return glister
    if name == "svm_min_margin":
        from benchmark.strategies.svm import svm_min_margin_select

        return lambda x, k, g: svm_min_margin_select(x["labeled_emb"], x["labeled_y"], x["unlabeled_emb"], k)
    raise ValueError(f"no perf runner for '{name}'")


def measure(name: str, n: int, d: int, c: int, labeled: int, budget: int, device: str) -> dict[str, Any]:
    """Run in a child process: seconds and peak extra memory of one selection."""
    torch.manual_seed(0)
    x = _inputs(n, d, c, labeled, device)
    fn = _runner(name)
    generator = torch.Generator(device=device).manual_seed(0)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
    start = time.perf_counter()
    picked = fn(x, budget, generator)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    seconds = time.perf_counter() - start
    picked = np.asarray(picked.cpu() if isinstance(picked, torch.Tensor) else picked)
    if len(np.unique(picked)) != min(budget, n):
        raise RuntimeError(f"{name} returned {len(np.unique(picked))} distinct picks, not {budget}")
    return {"strategy": name, "n": n, "d": d, "classes": c, "labeled": labeled, "budget": budget,
            "device": device, "seconds": round(seconds, 3), "peak_extra_mb": round(max(peak, 0) / 2**20, 1),
            "threads": torch.get_num_threads()}


def _child(queue: Any, args: tuple[Any, ...]) -> None:
    try:
        queue.put(measure(*args))
    except Exception as exc:  # reported, not raised: one failing strategy must not hide the others
        queue.put({"strategy": args[0], "error": f"{type(exc).__name__}: {exc}"})


def run_isolated(*args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, args))
    proc.start()
    result = queue.get()
    proc.join()
    return result


# Left out of the default run: batchbald (its greedy joint entropy costs candidates x samples x T x C per
# pick, hours at budget 1,000 on a CPU; time it with a small --budget), and the strategies that need a
# trained network or images rather than arrays (ent_gradnorm, lplgrad, learning_loss, jls, vaal, ceal's
# pseudo-labels): their cost is dominated by forward/backward passes, timed per round in the results.
DEFAULT_STRATEGIES = ["entropy", "margin", "least_confidence", "coreset", "badge", "kmeans", "typiclust",
                      "probcover", "cluster_margin", "jlp", "glister", "bald", "mean_std", "var_ratio",
                      "svm_min_margin"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--labeled", type=int, default=1_000)
    parser.add_argument("--budget", type=int, default=1_000)
    parser.add_argument("--dense-n", type=int, default=5_000, help="pool size for the dense comparison")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--strategies", nargs="+", default=DEFAULT_STRATEGIES)
    parser.add_argument("--skip-dense", action="store_true")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)

    rows = []
    for c in args.classes:
        for name in args.strategies:
            rows.append(run_isolated(name, args.n, args.d, c, args.labeled, args.budget, args.device))
            print(json.dumps(rows[-1]), flush=True)
        if not args.skip_dense:
            for ours, dense in (("coreset", "coreset_dense"), ("badge", "badge_dense")):
                for name in (ours, dense):
                    rows.append(run_isolated(name, args.dense_n, args.d, c, args.labeled, args.budget, args.device))
                    print(json.dumps(rows[-1]), flush=True)
    print("\n| strategy | N | C | device | seconds | peak extra MB |\n|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['strategy']} | | | | error: {r['error']} | |")
        else:
            print(f"| {r['strategy']} | {r['n']} | {r['classes']} | {r['device']} | {r['seconds']} | "
                  f"{r['peak_extra_mb']} |")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
