"""The bundles of a merged leaderboard: each one opened, its integrity checked, its verification status read.

A bundle whose integrity fails, or whose `alb verify --record` says a rerun did not reproduce, is rejected:
listed with the reasons, never ranked. The others carry a status line: the verification record's when
`alb verify --record` wrote one for this very bundle (same digest), else "integrity checked" (checked here),
or "unverified" when this alb could not re-derive the ids of some of its cells (unknown component versions).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.bundles.manifest import CellRun, Manifest
from benchmark.bundles.verify import open_and_check, record_path
from benchmark.errors import BundleError


@dataclass(frozen=True)
class CellRows:
    """One bundle's run of one cell: its result rows (a pandas DataFrame) and where it ran."""

    bundle: str  # the bundle's digest
    rows: Any
    run: CellRun


@dataclass
class Source:
    path: Path
    manifest: Manifest
    status: str
    rejected: list[str] = field(default_factory=list)  # why it is not ranked; empty: ranked
    cells: list[CellRows] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def submitter(self) -> str:
        return self.manifest.submitter.name or "anonymous"

    def summary(self) -> dict[str, Any]:
        m = self.manifest
        return {"file": self.path.name, "digest": m.digest, "submitter": m.submitter.model_dump(),
                "suite": m.suite.name, "cells": len(m.cells), "suite_cells": len(m.suite.cells),
                "partial": m.partial, "created": m.created, "alb_version": m.alb.version, "status": self.status,
                "ranked": not self.rejected, "rejected_because": self.rejected}


def _record(bundle: Path, digest: str) -> dict[str, Any] | None:
    """The verification record beside the bundle when it is for this bundle (same digest), else None."""
    path = record_path(bundle)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("bundle_digest") != digest:
        return None
    return record


def load_source(bundle: Path) -> Source:
    """Open and check one bundle (BundleError when it is not one)."""
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="alb-board-") as tmp:
        folder = Path(tmp)
        manifest, integrity = open_and_check(bundle, folder)
        if not integrity.ok:
            return Source(bundle, manifest, "rejected: integrity check failed", integrity.problems)
        record = _record(bundle, manifest.digest)
        if record is not None and not record.get("ok"):
            return Source(bundle, manifest, f"rejected: {record.get('status')}", ["alb verify --record: "
                          + str(record.get("status"))])
        if record is not None:
            status = str(record.get("status"))
        elif len(integrity.derived) < len(manifest.cells):
            status = (f"unverified: {len(manifest.cells) - len(integrity.derived)} cell(s) of component versions "
                      "this alb does not know")
        else:
            status = "integrity checked"
        cells = [CellRows(manifest.digest, pq.read_table(folder / e.file).to_pandas(), e.run) for e in manifest.cells]
    return Source(bundle, manifest, status, [], cells)


def load_sources(bundles: list[Path]) -> list[Source]:
    seen: dict[str, Path] = {}
    sources = []
    for path in bundles:
        source = load_source(path)
        if source.digest in seen:
            raise BundleError(f"{path} is the same bundle as {seen[source.digest]} (digest {source.digest}); "
                              "pass each bundle once")
        seen[source.digest] = path
        sources.append(source)
    return sources
