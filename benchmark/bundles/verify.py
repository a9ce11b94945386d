"""`alb verify`: is a bundle what it says it is, and do its cells reproduce?

The outcome's ``status`` is the line the merged leaderboard shows for the bundle; ``record`` the JSON that
`alb verify --record` writes beside the bundle (``<bundle>.verify.json``) for `alb leaderboard` to read.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.bundles.archive import extract_archive
from benchmark.bundles.integrity import Integrity, check_integrity, read_manifest
from benchmark.bundles.manifest import Manifest
from benchmark.bundles.rerun import RerunResult, chosen_cells, rerun_cell
from benchmark.bundles.rows import DEFAULT_TOLERANCE, Rows

RECORD_SUFFIX = ".verify.json"


@dataclass
class Verification:
    bundle: Path
    manifest: Manifest
    integrity: Integrity
    reruns: list[RerunResult] = field(default_factory=list)
    skipped_reruns: list[str] = field(default_factory=list)  # cells not rerun (versions unknown here), why

    @property
    def ok(self) -> bool:
        return self.integrity.ok and all(r.matches for r in self.reruns)

    @property
    def status(self) -> str:
        if not self.integrity.ok:
            return f"FAILED: {len(self.integrity.problems)} integrity problem(s)"
        text = "integrity checked"
        if self.integrity.flags:
            text += f" ({len(self.integrity.flags)} flag(s): not everything could be judged here)"
        if self.reruns:
            matching = sum(r.matches for r in self.reruns)
            kinds = sorted({"identical" if r.exact else f"within {r.tolerance}" for r in self.reruns if r.matches})
            text += (f"; {matching} of {len(self.manifest.cells)} cells rerun and matching"
                     + (f" ({', '.join(kinds)})" if kinds else ""))
            if matching < len(self.reruns):
                text += f"; {len(self.reruns) - matching} rerun(s) DO NOT REPRODUCE"
        return text

    def record(self) -> dict[str, Any]:
        return {"bundle_digest": self.manifest.digest, "ok": self.ok, "status": self.status,
                "cells": len(self.manifest.cells), "integrity_problems": self.integrity.problems,
                "flags": self.integrity.flags,
                "reruns": [{"cell_id": r.cell_id, "exact": r.exact, "setup": r.setup, "matches": r.matches,
                            "difference": r.difference, "tolerance": r.tolerance} for r in self.reruns]}

    def lines(self) -> list[str]:
        m = self.manifest
        who = m.submitter.name or "no submitter given"
        head = (f"bundle {self.bundle}: suite '{m.suite.name}', {len(m.cells)} of {len(m.suite.cells)} cells"
                f"{' (PARTIAL)' if m.partial else ''}, alb {m.alb.version}, by {who}, digest {m.digest}")
        out = [head]
        out += [f"  ✗ {p}" for p in self.integrity.problems]
        out += [f"  ? {f}" for f in self.integrity.flags]
        out += [f"  {'✓' if r.matches else '✗'} {r.line()}" for r in self.reruns]
        out += [f"  - {s}" for s in self.skipped_reruns]
        out.append(("verified: " if self.ok else "NOT verified: ") + self.status)
        return out


def _bundled_rows(folder: Path, file: str) -> Rows:
    import pyarrow.parquet as pq

    return Rows.of(pq.read_table(folder / file).to_pylist())


def open_and_check(bundle: Path, folder: Path) -> tuple[Manifest, Integrity]:
    """Unpack ``bundle`` into ``folder`` and check its integrity (BundleError: not a bundle)."""
    names = extract_archive(bundle, folder)
    manifest = read_manifest(folder, bundle)
    return manifest, check_integrity(folder, names, manifest)


def verify_bundle(bundle: Path, rerun: int = 0, seed: int = 0, data_dir: Path | None = None,
                  tolerance: float = DEFAULT_TOLERANCE) -> Verification:
    """Check ``bundle``; with ``rerun`` > 0 also rerun that many of its cells (drawn with ``seed``) whose ids
    this alb re-derived, and compare them round by round."""
    from benchmark.data.loading import resolve_data_dir

    with tempfile.TemporaryDirectory(prefix="alb-bundle-") as tmp:
        folder = Path(tmp)
        manifest, integrity = open_and_check(bundle, folder)
        verification = Verification(bundle, manifest, integrity)
        if rerun <= 0 or not integrity.ok:
            return verification
        entries = {e.id: e for e in manifest.cells}
        for cell_id in chosen_cells(list(entries), rerun, seed):
            if cell_id not in integrity.derived:
                verification.skipped_reruns.append(f"cell {cell_id} not rerun: this alb cannot run it as "
                                                   "recorded (see the flags)")
                continue
            entry = entries[cell_id]
            verification.reruns.append(rerun_cell(entry, _bundled_rows(folder, entry.file),
                                                  resolve_data_dir(data_dir), tolerance))
    return verification


def record_path(bundle: Path) -> Path:
    return bundle.with_name(bundle.name + RECORD_SUFFIX)


def write_record(verification: Verification) -> Path:
    from benchmark.store import atomic_write

    target = record_path(verification.bundle)
    text = json.dumps(verification.record(), indent=1) + "\n"
    atomic_write(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return target
