"""Helpers of the bundle, verify and leaderboard tests: real tiny bundles, and ways to doctor them."""

from __future__ import annotations

import io
import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmark.bundles.archive import write_archive
from benchmark.bundles.manifest import MANIFEST_NAME, Manifest, manifest_text, sealed, sha256_bytes

# 4 cells x 2 rounds x 1 epoch on digits with the tiny CNN: a bundle in a few seconds, a rerun in under one
MICRO_SUITE = """\
name: {name}
defaults:
  dataset: digits
  backbone: tiny_cnn
  budget: {{initial: 10, query: 10, rounds: {rounds}}}
  training: {{epochs: 1, batch_size: 16, optimizer: {{name: sgd, lr: 0.05}}}}
matrix:
  strategy: [random, entropy]
  seed: [0, 1]
"""


def micro_suite(folder: Path, name: str = "micro", rounds: int = 1) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(MICRO_SUITE.format(name=name, rounds=rounds)))
    return path


def run_and_bundle(folder: Path, suite: Path, out: Path, *extra: str, results: str = "results") -> Path:
    from benchmark.cli import main

    assert main(["run", str(suite), "--results", str(folder / results), "--workers", "1", "--threads", "1",
                 "--quiet"]) == 0
    assert main(["bundle", str(suite), "--results", str(folder / results), "--out", str(out), *extra]) == 0
    return out


def unpack(bundle: Path) -> dict[str, bytes]:
    import tarfile

    with tarfile.open(bundle, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def manifest_of(files: dict[str, bytes]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(files[MANIFEST_NAME])
    return data


def repack(files: dict[str, bytes], out: Path, reseal: bool = False) -> Path:
    """Write ``files`` as a bundle; ``reseal``: first recompute every hash and the digest, as a careful forger
    would, so that only the deeper checks can catch the change."""
    if reseal:
        manifest = Manifest.model_validate(manifest_of(files))
        hashes = {n: sha256_bytes(d) for n, d in files.items() if n != MANIFEST_NAME}
        manifest = sealed(manifest.model_copy(update={"files": hashes}))
        files = {**files, MANIFEST_NAME: manifest_text(manifest).encode()}
    write_archive(out, files)
    return out


def edit_manifest(files: dict[str, bytes], edit: Callable[[dict[str, Any]], None]) -> dict[str, bytes]:
    data = manifest_of(files)
    edit(data)
    return {**files, MANIFEST_NAME: json.dumps(data).encode()}


def edit_cell(data: bytes, column: str, round_index: int, value: Any) -> bytes:
    """The parquet ``data`` with one value changed, alb's metadata kept."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    values = table.column(column).to_pylist()
    values[round_index] = value
    index = table.schema.get_field_index(column)
    changed = table.set_column(index, table.schema.field(index), pa.array(values, type=table.schema.field(index).type))
    table = changed.replace_schema_metadata(table.schema.metadata)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def cell_names(files: dict[str, bytes]) -> list[str]:
    return sorted(n for n in files if n.startswith("cells/"))
