"""The manifest of a submission bundle (``manifest.json`` at the archive's root): its schema and digests.

The manifest lists every other file of the bundle with its sha256; the bundle's digest is the sha256 of the
manifest's canonical JSON without the digest itself, so it covers every file (through their hashes) and every
recorded fact. No torch here.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FORMAT = "alb-bundle"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
CELLS_FOLDER = "cells"  # cells/<id>.parquet inside the bundle
SUITE_FOLDER = "suite"  # suite/<file name>: the suite file as given


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Submitter(_Model):
    name: str | None = None
    url: str | None = None
    note: str | None = None


class AlbSource(_Model):
    version: str
    git_commit: str = Field("", description="'' when alb did not run from a git checkout")


class Component(_Model):
    """A component's version and the sha256 of its sources (benchmark/component_fingerprints.json)."""

    version: int
    sha256: str


class CellRun(_Model):
    """Where and how a cell ran, from its result rows (benchmark/store.py provenance columns)."""

    device: str | None = None
    torch_threads: int | None = None
    precision: str | None = None
    torch_version: str | None = None
    python: str | None = None
    compiled: str | None = None


class CellEntry(_Model):
    id: str
    file: str
    config: dict[str, Any] = Field(description="the cell's resolved configuration (CellConfig.canonical())")
    versions: dict[str, int] = Field(description="component versions the cell ran with (benchmark/versions.py)")
    rounds: int
    run: CellRun


class MissingCell(_Model):
    id: str
    state: str = Field(description="pending, running or failed (alb status)")


class SuiteInfo(_Model):
    name: str
    file: str
    cells: list[str] = Field(description="every cell id of the suite, finished or not")


class Manifest(_Model):
    format: Literal["alb-bundle"] = FORMAT
    format_version: int = FORMAT_VERSION
    created: str
    partial: bool
    alb: AlbSource
    submitter: Submitter
    suite: SuiteInfo
    components: dict[str, Component]
    plugins: list[dict[str, Any]] = Field(default_factory=list, description="identities of plugin components")
    environment: dict[str, Any]
    cells: list[CellEntry]
    missing: list[MissingCell] = Field(default_factory=list)
    files: dict[str, str] = Field(description="path inside the bundle -> sha256, every file but the manifest")
    digest: str = Field("", description="sha256 of the manifest's canonical JSON without this field")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def manifest_digest(manifest: Manifest) -> str:
    """The bundle's digest: every recorded fact and every file's hash, without the digest field."""
    return sha256_bytes(canonical_json(manifest.model_dump(mode="json", exclude={"digest"})))


def sealed(manifest: Manifest) -> Manifest:
    """``manifest`` with its digest filled in."""
    return manifest.model_copy(update={"digest": manifest_digest(manifest)})


def manifest_text(manifest: Manifest) -> str:
    return json.dumps(manifest.model_dump(mode="json"), indent=1, sort_keys=True) + "\n"


def cell_file_name(cell_id: str) -> str:
    return f"{CELLS_FOLDER}/{cell_id}.parquet"
