"""Time and memory of one label-propagation step (training.semi: label_propagation) at CIFAR scale.

    python -m benchmark.perf.label_propagation                      # N=50,000, d=512, k=50, 10 classes
    python -m benchmark.perf.label_propagation --n 50000 --device cuda

On generated non-negative features (ReLU of Gaussians, like a pooled CNN embedding): the blockwise
kNN graph (never N x N), conjugate gradient for all classes at once, and the pseudo-label weights,
i.e. what seed 004's algorithm 1 computes once per epoch. Memory: peak RSS growth over the inputs
(CPU) or torch's peak allocated memory (CUDA).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch


def _peak_mib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(n: int, d: int, k: int, classes: int, labeled: int, device: str) -> dict[str, float | int | str]:
    from benchmark.training.semi import knn_affinity, propagate_labels, pseudo_label_weights

    g = torch.Generator().manual_seed(0)
    features = torch.randn(n, d, generator=g).relu().to(device)
    labels = torch.randint(0, classes, (labeled,), generator=g).to(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    base = _peak_mib(device)
    _sync(device)
    start = time.perf_counter()
    graph = knn_affinity(features, k, 3.0)
    _sync(device)
    knn_seconds = time.perf_counter() - start
    start = time.perf_counter()
    z = propagate_labels(graph, torch.arange(labeled, device=device), labels, classes, 0.99)
    pseudo_label_weights(z[labeled:])
    _sync(device)
    cg_seconds = time.perf_counter() - start
    return {"device": device, "n": n, "d": d, "k": k, "classes": classes, "threads": torch.get_num_threads(),
            "knn_seconds": round(knn_seconds, 2), "cg_seconds": round(cg_seconds, 2), "edges": int(graph._nnz()),
            "peak_mib_over_inputs": round(_peak_mib(device) - (0 if device.startswith("cuda") else base))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--labeled", type=int, default=1000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(measure(args.n, args.d, args.k, args.classes, args.labeled, args.device)))


if __name__ == "__main__":
    main()
