"""``init: checkpoint:PATH``: a state dict saved with ``torch.save``, matched to the backbone's own tensors."""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark.config import checkpoint_file_problem
from benchmark.pretrain.errors import CheckpointError

HEAD_PREFIX = "head."
WRAPPER_KEYS = ("state_dict", "model", "backbone", "encoder", "net")
SHOWN = 5  # how many missing / mismatched tensors an error lists
OPTIONAL_SUFFIXES = (".num_batches_tracked",)  # batch-norm counters older checkpoints lack


def without_head(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIX)}


def backbone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict without its classifier, as contiguous CPU copies."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in without_head(model.state_dict()).items()}


def _tensors(obj: Any) -> dict[str, torch.Tensor] | None:
    if not isinstance(obj, dict):
        return None
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    return tensors or None


def unwrap(obj: Any) -> dict[str, torch.Tensor]:
    """The tensors of a plain state dict, or of the state dict under 'state_dict' / 'model' / ... (nested
    wrappers too, as training scripts save {'epoch': ..., 'state_dict': {...}, 'optimizer': ...})."""
    for _ in range(4):
        if not isinstance(obj, dict):
            break
        inner = next((obj[key] for key in WRAPPER_KEYS if isinstance(obj.get(key), dict)), None)
        if inner is None:
            break
        obj = inner
    tensors = _tensors(obj)
    if tensors is None:
        kind = type(obj).__name__
        keys = ", ".join(map(str, list(obj)[:8])) if isinstance(obj, dict) else ""
        raise CheckpointError(f"the checkpoint holds no state dict (a {kind}{' with keys ' + keys if keys else ''}); "
                              "save one with torch.save(model.state_dict(), PATH) or torch.save({'state_dict': "
                              "model.state_dict()}, PATH)")
    return tensors


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    if problem := checkpoint_file_problem(path):  # changed since the suite was validated
        raise CheckpointError(problem)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and weights-only errors all mean the same thing to the user
        raise CheckpointError(f"init checkpoint: cannot read '{path}' with torch.load(weights_only=True): "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. Re-save "
                              "only the tensors: torch.save(model.state_dict(), PATH)") from exc
    return unwrap(obj)


def best_prefix(keys: list[str], expected: set[str]) -> str:
    """The key prefix ('', 'module.', 'module.encoder.', ...) whose removal makes most keys expected ones."""
    votes: Counter[str] = Counter()
    for key in keys:
        parts = key.split(".")
        for cut in range(len(parts)):
            if ".".join(parts[cut:]) in expected:
                votes[".".join(parts[:cut]) + "." if cut else ""] += 1
                break
    if not votes:
        return ""
    top = max(votes.values())
    return min(p for p, v in votes.items() if v == top)  # ties: the shortest prefix, deterministically


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if not prefix:
        return dict(state)
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def mismatches(state: dict[str, torch.Tensor],
               expected: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    """(missing keys, 'key: checkpoint shape vs expected shape' lines) against the expected tensors."""
    missing = [k for k in expected if k not in state and not k.endswith(OPTIONAL_SUFFIXES)]
    wrong = [f"{k}: {tuple(state[k].shape)} in the checkpoint, {tuple(v.shape)} expected"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    return missing, wrong


def template_state(backbone: str, num_classes: int, in_channels: int) -> dict[str, torch.Tensor]:
    """Shapes of a backbone's tensors without its classifier (built on the meta device: no memory, no time)."""
    from benchmark.models.base import build_backbone

    with torch.device("meta"):
        model = build_backbone(backbone, num_classes, in_channels)
    return without_head(model.state_dict())


def guess_backbone(state: dict[str, torch.Tensor], num_classes: int, in_channels: int) -> str:
    """Which registered backbone the checkpoint's tensors fit best, in words for an error message."""
    from benchmark.models import BACKBONES

    # backbones whose module is loaded already first: a perfect fit there spares importing timm / transformers
    entries = sorted(BACKBONES, key=lambda e: e.target.partition(":")[0] not in sys.modules)
    best, best_score = "", 0.0
    for entry in entries:
        with contextlib.suppress(Exception):
            expected = template_state(entry.name, num_classes, in_channels)
            fitted = strip_prefix(state, best_prefix(list(state), set(expected)))
            ok = sum(k in fitted and fitted[k].shape == v.shape for k, v in expected.items())
            score = ok / max(len(expected), len(without_head(fitted)), 1)
            if score > best_score:
                best, best_score = entry.name, score
        if best_score >= 0.9:  # a confident answer: no need to import every other backbone
            break
    if best_score >= 0.9:
        return f"it seems to be a '{best}' checkpoint ({best_score:.0%} of its tensors fit)"
    if best:
        return f"it fits no alb backbone well (closest: '{best}', {best_score:.0%} of the tensors fit)"
    return "it fits no alb backbone"


def checkpoint_state(path: Path, backbone: str, num_classes: int, in_channels: int) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors renamed to and validated against ``backbone``'s, head entries dropped; extra
    tensors (a SimSiam projector, an optimiser's buffers) are ignored."""
    raw = read_checkpoint(path)
    expected = template_state(backbone, num_classes, in_channels)
    state = without_head(strip_prefix(raw, best_prefix(list(raw), set(expected))))
    missing, wrong = mismatches(state, expected)
    if missing or wrong:
        lines = [f"init checkpoint: '{path}' does not fit backbone '{backbone}' ({in_channels} input channels): "
                 f"{len(missing)} tensors missing, {len(wrong)} of the wrong shape."]
        if missing:
            more = f" (+{len(missing) - SHOWN} more)" if len(missing) > SHOWN else ""
            lines.append(f"  missing: {', '.join(missing[:SHOWN])}{more}")
        if wrong:
            more = f" (+{len(wrong) - SHOWN} more)" if len(wrong) > SHOWN else ""
            lines.append(f"  wrong shape: {'; '.join(wrong[:SHOWN])}{more}")
        lines.append(f"  {guess_backbone(raw, num_classes, in_channels)}; set the cell's backbone to match, "
                     "or give a checkpoint of this backbone")
        raise CheckpointError("\n".join(lines))
    return {k: state[k].to(v.dtype).contiguous().clone() for k, v in expected.items() if k in state}
