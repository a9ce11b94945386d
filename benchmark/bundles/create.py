"""`alb bundle`: one gzip tar with a suite file, its finished cells and a manifest that seals them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark import __version__
from benchmark.bundles.archive import write_archive
from benchmark.bundles.environment import component_table, environment, plugin_identities
from benchmark.bundles.manifest import (
    MANIFEST_NAME,
    SUITE_FOLDER,
    AlbSource,
    CellEntry,
    CellRun,
    Manifest,
    MissingCell,
    Submitter,
    SuiteInfo,
    cell_file_name,
    manifest_text,
    sealed,
    sha256_bytes,
)
from benchmark.errors import BundleError

SHOWN_IDS = 5


@dataclass(frozen=True)
class BundleOutcome:
    path: Path
    manifest: Manifest


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def cell_run(row: dict[str, Any]) -> CellRun:
    """Where a cell ran, from the provenance columns of its first row (absent in old results: None)."""
    def text(key: str) -> str | None:
        value = row.get(key)
        return None if value is None else str(value)

    return CellRun(device=text("device"), torch_threads=_int_or_none(row.get("torch_threads")),
                   precision=text("precision"), torch_version=text("torch_version"), python=text("python"),
                   compiled=text("compiled"))


def cell_entry(cell_id: str, path: Path) -> CellEntry:
    """The manifest entry of a finished cell file: its resolved config (from alb's metadata), versions, run."""
    import pyarrow.parquet as pq

    from benchmark.store import read_cell_metadata
    from benchmark.versions import VERSION_PREFIX

    meta = read_cell_metadata(path)
    first = pq.read_table(path).slice(0, 1).to_pylist()[0]
    versions = {k.removeprefix(VERSION_PREFIX): int(v) for k, v in first.items()
                if k.startswith(VERSION_PREFIX) and v is not None}
    return CellEntry(id=cell_id, file=cell_file_name(cell_id), config=meta["config"], versions=versions,
                     rounds=int(meta["config"]["budget"]["rounds"]), run=cell_run(first))


def _refuse_partial(suite_name: str, missing: list[MissingCell], suite_path: Path, results: Path) -> None:
    shown = ", ".join(f"{m.id} ({m.state})" for m in missing[:SHOWN_IDS])
    more = f" and {len(missing) - SHOWN_IDS} more" if len(missing) > SHOWN_IDS else ""
    raise BundleError(f"suite '{suite_name}' has {len(missing)} unfinished or failed cell(s) in {results}: "
                      f"{shown}{more}. Finish them with 'alb run {suite_path} --results {results}' (see "
                      f"'alb status'), or pass --allow-partial to bundle the finished ones, marked partial")


def write_bundle(suite_path: Path, results: Path, out: Path, submitter: Submitter,
                 allow_partial: bool = False) -> BundleOutcome:
    """Bundle the finished cells of the suite at ``suite_path`` from ``results`` into ``out``."""
    from benchmark.status import cell_state
    from benchmark.store import SuiteStore, git_commit, now_iso
    from benchmark.suite import load_suite

    if out.exists() and out.is_dir():
        raise BundleError(f"--out {out} is a folder; pass a file name such as {out / 'bundle.tar.gz'}")
    suite = load_suite(suite_path)
    store = SuiteStore(results, suite.name)
    done: dict[str, Path] = {}
    missing: list[MissingCell] = []
    for cell in suite.cells:
        path = store.done_path(cell.id)
        if path is None:
            missing.append(MissingCell(id=cell.id, state=cell_state(store, cell.id)))
        else:
            done[cell.id] = path
    if missing and not allow_partial:
        _refuse_partial(suite.name, missing, suite_path, results)
    if not done:
        raise BundleError(f"suite '{suite.name}' has no finished cell in {results}; run 'alb run {suite_path} "
                          f"--results {results}' first")
    suite_file = f"{SUITE_FOLDER}/{suite.path.name}"
    files = {suite_file: suite.path.read_bytes(), **{cell_file_name(i): p.read_bytes() for i, p in done.items()}}
    entries = [cell_entry(i, p) for i, p in done.items()]
    manifest = sealed(Manifest(
        created=now_iso(), partial=bool(missing), alb=AlbSource(version=__version__, git_commit=git_commit()),
        submitter=submitter, suite=SuiteInfo(name=suite.name, file=suite_file, cells=[c.id for c in suite.cells]),
        components=component_table(), plugins=plugin_identities(c.config.canonical() for c in suite.cells
                                                                     if c.id in done),
        environment=environment(e.run for e in entries), cells=entries, missing=missing,
        files={name: sha256_bytes(data) for name, data in files.items()}))
    write_archive(out, {**files, MANIFEST_NAME: manifest_text(manifest).encode()})
    return BundleOutcome(out, manifest)
