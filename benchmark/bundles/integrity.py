"""Integrity of an unpacked bundle: hashes, cell ids re-derived from their configs, rows, component versions.

``problems`` mean the bundle was changed after it was written, or never was a faithful record (exit 1 of
`alb verify`); ``flags`` are what this alb cannot judge (component versions or sources it does not know, a
dataset given by a path that is not on this machine), reported but not held against the bundle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.bundles.manifest import (
    CELLS_FOLDER,
    MANIFEST_NAME,
    CellEntry,
    Manifest,
    cell_file_name,
    manifest_digest,
    sha256_bytes,
)
from benchmark.bundles.rows import Rows, row_problems
from benchmark.errors import AlbError, BundleError

SHOWN_FLAGS = 8


@dataclass
class Integrity:
    problems: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    derived: set[str] = field(default_factory=set)  # cells whose id was re-derived here and matched

    @property
    def ok(self) -> bool:
        return not self.problems


def read_manifest(folder: Path, source: Path) -> Manifest:
    """The manifest of an unpacked bundle; BundleError when there is none or it is not alb's."""
    from pydantic import ValidationError

    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(f"{source}: no {MANIFEST_NAME} at the archive's root; not an alb bundle")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{source}: {MANIFEST_NAME} is not JSON ({exc}); not an alb bundle") from None
    if not isinstance(data, dict) or data.get("format") != "alb-bundle":
        raise BundleError(f"{source}: {MANIFEST_NAME} does not declare format 'alb-bundle'; not an alb bundle")
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise BundleError(f"{source}: {MANIFEST_NAME} key '{where}': {err['msg']} ({exc.error_count()} "
                          "problem(s)); not a bundle this alb can read") from None


def _file_problems(folder: Path, names: list[str], manifest: Manifest) -> list[str]:
    problems = []
    if manifest_digest(manifest) != manifest.digest:
        problems.append(f"{MANIFEST_NAME}: its digest does not match its content (edited after it was sealed)")
    present = [n for n in names if n != MANIFEST_NAME]
    for name in present:
        if name not in manifest.files:
            problems.append(f"{name}: not listed in the manifest (a file was added)")
        elif sha256_bytes((folder / name).read_bytes()) != manifest.files[name]:
            problems.append(f"{name}: its sha256 differs from the manifest's (the file was changed)")
    problems += [f"{name}: listed in the manifest but not in the bundle (removed)"
                 for name in sorted(set(manifest.files) - set(present))]
    expected = {manifest.suite.file, *(cell_file_name(c.id) for c in manifest.cells)}
    problems += [f"{name}: listed in the manifest but neither the suite file nor a cell of it"
                 for name in sorted(set(manifest.files) - expected)]
    problems += [f"{name}: the manifest names it but does not list its sha256"
                 for name in sorted(expected - set(manifest.files))]
    return problems


def _manifest_problems(manifest: Manifest) -> list[str]:
    problems = []
    ids = [c.id for c in manifest.cells]
    if len(set(ids)) != len(ids):
        problems.append(f"{MANIFEST_NAME}: a cell is listed twice")
    missing = {m.id for m in manifest.missing}
    if set(ids) | missing != set(manifest.suite.cells) or set(ids) & missing:
        problems.append(f"{MANIFEST_NAME}: its finished and missing cells are not the suite's cells")
    if manifest.partial != bool(missing):
        problems.append(f"{MANIFEST_NAME}: marked partial={manifest.partial} with {len(missing)} missing cell(s)")
    for entry in manifest.cells:
        if entry.file != cell_file_name(entry.id):
            problems.append(f"{MANIFEST_NAME}: cell {entry.id} points at {entry.file}, not {cell_file_name(entry.id)}")
    return problems


def _pool_size(config: Any) -> int | None:
    from benchmark.data import dataset_info
    from benchmark.data.views import view_pool_size

    return view_pool_size(dataset_info(config.dataset), config.view)


def _derived(entry: CellEntry, integrity: Integrity) -> Any:
    """The entry's config validated by this alb, its id re-derived and compared; None when that cannot be judged
    here (recorded as a flag) or fails (a problem)."""
    from pydantic import ValidationError

    from benchmark.config import CellConfig
    from benchmark.versions import component_versions

    try:
        config = CellConfig.model_validate(entry.config)
        ours = component_versions(config)
    except (ValidationError, AlbError, KeyError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        integrity.flags.append(f"cell {entry.id}: its config cannot be validated by this alb ({text}); id not "
                               "re-derived")
        return None
    if ours != entry.versions:
        differing = ", ".join(f"{k} {entry.versions.get(k, 'none')} (here {ours.get(k, 'none')})"
                              for k in sorted(set(ours) | set(entry.versions)) if ours.get(k) != entry.versions.get(k))
        integrity.flags.append(f"cell {entry.id}: component versions unknown to this alb: {differing}; id not "
                               "re-derived")
        return None
    derived = config.cell_id()
    if derived != entry.id:
        integrity.problems.append(f"{entry.file}: cell {entry.id}: the id re-derived from its resolved config is "
                                  f"{derived} (its config was changed, or another cell put in its place)")
        return None
    integrity.derived.add(entry.id)
    return config


def _column_value(value: Any) -> Any:
    """A config value as the store writes it into a column (lists and mappings as JSON)."""
    return json.dumps(value) if isinstance(value, list | dict) else value


def _cell_problems(folder: Path, entry: CellEntry, config: Any) -> list[str]:
    import pyarrow.parquet as pq

    from benchmark.config import flatten
    from benchmark.store import cell_file_problem, read_cell_metadata
    from benchmark.versions import VERSION_PREFIX

    path = folder / entry.file
    where = f"{entry.file}: cell {entry.id}"
    why = cell_file_problem(path, entry.id)
    if why is not None:
        return [f"{where}: {why}"]
    meta = read_cell_metadata(path)
    if meta.get("config") != entry.config:
        return [f"{where}: the config in the file is not the manifest's"]
    records = pq.read_table(path).to_pylist()
    expected = {**flatten(entry.config), **{f"{VERSION_PREFIX}{k}": v for k, v in entry.versions.items()},
                "cell_id": entry.id}
    problems = []
    for r, record in enumerate(records):
        for key, value in expected.items():
            if key in record and record[key] != _column_value(value):
                problems.append(f"{where}: round {r}: column {key} is {record[key]!r}, the config says {value!r}")
                break
    pool = None
    if config is not None:
        try:
            pool = _pool_size(config)
        except AlbError:
            pool = None
    problems += [f"{where}: {p}" for p in row_problems(Rows.of(records), entry.config["budget"], pool)]
    return problems


def _readable_cell_problems(folder: Path, entry: CellEntry, config: Any) -> list[str]:
    """:func:`_cell_problems`, with a file or record that cannot even be read as one problem."""
    import pyarrow as pa

    try:
        return _cell_problems(folder, entry, config)
    except (pa.ArrowException, OSError, ValueError, TypeError, KeyError) as exc:
        return [f"{entry.file}: cell {entry.id}: cannot be read as a cell ({type(exc).__name__}: {exc})"]


def _suite_problems(folder: Path, manifest: Manifest, integrity: Integrity) -> None:
    from benchmark.suite import load_suite

    all_derived = len(integrity.derived) == len(manifest.cells)
    try:
        suite = load_suite(folder / manifest.suite.file)
    except (AlbError, OSError) as exc:
        integrity.flags.append(f"{manifest.suite.file}: cannot be loaded by this alb ({str(exc).splitlines()[0]})")
        return
    ids = [c.id for c in suite.cells]
    if suite.name != manifest.suite.name:
        integrity.problems.append(f"{manifest.suite.file}: names suite '{suite.name}', the manifest "
                                  f"'{manifest.suite.name}'")
    elif ids != manifest.suite.cells:
        (integrity.problems if all_derived else integrity.flags).append(
            f"{manifest.suite.file}: its cells here are not the manifest's"
            + ("" if all_derived else " (component versions differ, see above)"))


def _component_flags(manifest: Manifest) -> list[str]:
    from benchmark.versions import fingerprints

    ours = fingerprints()
    unknown = [n for n in manifest.components if n not in ours]
    versions = [f"{n} v{c.version} (here v{ours[n]['version']})" for n, c in manifest.components.items()
                if n in ours and ours[n]["version"] != c.version]
    sources = [n for n, c in manifest.components.items()
               if n in ours and ours[n]["version"] == c.version and ours[n]["sha256"] != c.sha256]
    flags = []
    for what, items in (("components unknown to this alb", unknown), ("other versions than this alb's", versions),
                        ("same version, other source than this alb's", sources)):
        if items:
            more = f" and {len(items) - SHOWN_FLAGS} more" if len(items) > SHOWN_FLAGS else ""
            flags.append(f"{what}: {', '.join(items[:SHOWN_FLAGS])}{more}")
    return flags


def check_integrity(folder: Path, names: list[str], manifest: Manifest) -> Integrity:
    """Every integrity check of the bundle unpacked in ``folder`` (its file ``names``)."""
    integrity = Integrity()
    integrity.problems += _file_problems(folder, names, manifest)
    integrity.problems += _manifest_problems(manifest)
    extra = [n for n in names if n.startswith(f"{CELLS_FOLDER}/") and n not in manifest.files]
    present = set(names)
    for entry in manifest.cells:
        if entry.file not in present or entry.file in extra:
            continue
        config = _derived(entry, integrity)
        integrity.problems += _readable_cell_problems(folder, entry, config)
    if manifest.suite.file in present:
        _suite_problems(folder, manifest, integrity)
    integrity.flags += _component_flags(manifest)
    return integrity
