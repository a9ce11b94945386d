"""Where the active-learning loop of one cell stands between two rounds, saved atomically after every round.

A cell resumes from this state after a crash or a kill and produces exactly the rows of an
uninterrupted run. A checkpoint that cannot be used (another format version, another cell, an
unreadable file, a folder in its place) is never fatal: it is moved to ``RESULTS/cells/.quarantine/``
folder with a warning that names it, and the cell restarts from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.store import atomic_write, open_regular, quarantine

# the layout of the saved dict; a change of keys or meaning needs a new version (old files then restart)
CHECKPOINT_VERSION = 3

Weights = dict[str, dict[str, torch.Tensor]]  # {"model": ..., "aux": ...}, on the CPU, for warm starts


def _no_indices() -> np.ndarray:
    return np.empty(0, np.int64)


@dataclass
class CellState:
    """The labeled set, the batch that joined it last (recorded in the next row), the rows so far, the
    pseudo-labels for the next round's training only (CEAL: pool indices and labels), the warm-start
    weights and the round to run next."""

    cell_id: str
    labeled: np.ndarray
    pending: np.ndarray
    pending_seconds: float
    next_round: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    pseudo_index: np.ndarray = field(default_factory=_no_indices)
    pseudo_label: np.ndarray = field(default_factory=_no_indices)
    weights: Weights | None = None

    def save(self, path: Path) -> None:
        payload = {
            "version": CHECKPOINT_VERSION, "cell_id": self.cell_id, "next_round": self.next_round,
            "rows": self.rows, "labeled": torch.as_tensor(self.labeled), "pending": torch.as_tensor(self.pending),
            "pending_seconds": self.pending_seconds, "weights": self.weights,
            "pseudo_index": torch.as_tensor(self.pseudo_index), "pseudo_label": torch.as_tensor(self.pseudo_label)}
        atomic_write(path, lambda tmp: torch.save(payload, tmp))

    @classmethod
    def load(cls, path: Path, cell_id: str, pool_size: int | None = None) -> CellState | None:
        """The saved state of ``cell_id``, or None when there is none or it cannot be used (quarantined): also
        when its indices do not fit a pool of ``pool_size`` images (a state saved on other data)."""
        if path.is_dir() and not path.is_symlink():
            return _discard(path, "it is a folder, not a file")
        if not path.is_file():
            return None
        try:
            with open_regular(path) as fh:  # a FIFO put there since the check above is never waited on
                saved = torch.load(fh, map_location="cpu", weights_only=True)
            version = saved.get("version")
            if version != CHECKPOINT_VERSION:
                return _discard(path, f"format version {version}, this alb writes {CHECKPOINT_VERSION}")
            if saved.get("cell_id") != cell_id:
                return _discard(path, f"it belongs to cell {saved.get('cell_id')}")
            state = cls(cell_id, saved["labeled"].numpy(), saved["pending"].numpy(), saved["pending_seconds"],
                        saved["next_round"], saved["rows"], saved["pseudo_index"].numpy(),
                        saved["pseudo_label"].numpy(), saved["weights"])
        except Exception as exc:  # a truncated or foreign file must not stop the run
            return _discard(path, f"it cannot be read ({type(exc).__name__}: {exc})")
        misfit = state.misfit(pool_size)
        return state if misfit is None else _discard(path, f"it does not fit the cell's data: {misfit}")

    def misfit(self, pool_size: int | None) -> str | None:
        """Why this state cannot belong to a pool of ``pool_size`` images, or None when it can."""
        if len(self.rows) != self.next_round:
            return f"{len(self.rows)} rows for {self.next_round} finished rounds"
        if np.unique(self.labeled).size != self.labeled.size:
            return "its labeled set repeats an index"
        for name in ("labeled", "pending", "pseudo_index"):
            indices = getattr(self, name)
            outside = indices[(indices < 0) | (indices >= (pool_size if pool_size is not None else np.inf))]
            if outside.size:
                return f"{name} index {int(outside[0])} is outside the pool of {pool_size} images"
        return None


def _discard(path: Path, why: str) -> None:
    """Move the unusable checkpoint ``cells/.work/<cell>.pt`` to ``cells/.quarantine/`` (warned)."""
    quarantine(path, f"{why}; the cell restarts from scratch", suite_dir=path.parent.parent)
    return None
