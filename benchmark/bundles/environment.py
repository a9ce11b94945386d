"""Facts about the machine and code that a bundle records: environment, component fingerprints, plugins."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmark.bundles.manifest import CellRun, Component


def environment(runs: Iterable[CellRun]) -> dict[str, Any]:
    """The machine writing the bundle (Python, torch, CUDA, device name, OS, CPU count, torch threads), and
    the devices, precisions and thread counts the bundled cells ran with (each cell's own are in its entry)."""
    import torch

    cuda = torch.cuda.is_available()
    runs = list(runs)
    return {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "device_name": torch.cuda.get_device_name(0) if cuda else cpu_name(),
            "os": platform.platform(), "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
            "cells_devices": sorted({r.device for r in runs if r.device}),
            "cells_precisions": sorted({r.precision for r in runs if r.precision}),
            "cells_threads": sorted({r.torch_threads for r in runs if r.torch_threads is not None})}


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def component_table() -> dict[str, Component]:
    """Every component of this alb with its version and source fingerprint (benchmark/versions.py)."""
    from benchmark.versions import fingerprints

    return {name: Component(version=f["version"], sha256=f["sha256"]) for name, f in fingerprints().items()}


def plugin_identities(configs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The plugin components (benchmark.plugins) the given cell configurations run: kind, name, target, and
    the identity (distribution, version, sources sha256) that is also in their cell ids and rows."""
    from benchmark.versions import named_components

    found: dict[tuple[str, str], dict[str, Any]] = {}
    for config in configs:
        for _, registry, name in named_components(config):
            origin = registry.entry(name).origin
            if origin is not None:
                found[registry.kind, name] = {"kind": registry.kind, "name": name, **origin.identity()}
    return [found[key] for key in sorted(found)]
