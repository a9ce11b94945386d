"""`alb bundle`: what a bundle holds, what it records, and what it refuses."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from bundle_kit import manifest_of, micro_suite, run_and_bundle, unpack

from benchmark.bundles.archive import extract_archive
from benchmark.bundles.manifest import Manifest, manifest_digest, sha256_bytes
from benchmark.cli import main
from benchmark.config import CellConfig
from benchmark.errors import BundleError
from benchmark.suite import load_suite
from benchmark.versions import TRAINER_VERSION


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bundle")
    suite = micro_suite(folder)
    return run_and_bundle(folder, suite, folder / "micro.tar.gz", "--submitter", "Ada", "--url",
                          "https://example.org/ada", "--note", "first try")


def test_bundle_holds_manifest_suite_and_every_finished_cell(bundle: Path) -> None:
    files = unpack(bundle)
    manifest = Manifest.model_validate(manifest_of(files))
    suite = load_suite(bundle.parent / "micro.yaml")
    cells = [f"cells/{c.id}.parquet" for c in suite.cells]
    assert sorted(files) == sorted(["manifest.json", "suite/micro.yaml", *cells])
    assert manifest.suite.cells == [c.id for c in suite.cells] and not manifest.partial and not manifest.missing
    # every file's sha256, and one digest of the whole
    assert manifest.files == {n: sha256_bytes(d) for n, d in files.items() if n != "manifest.json"}
    assert manifest.digest == manifest_digest(manifest) and len(manifest.digest) == 64
    assert manifest.submitter.name == "Ada" and manifest.submitter.url == "https://example.org/ada"
    assert manifest.submitter.note == "first try" and manifest.created and manifest.alb.version
    # the resolved config of each cell re-derives its id; its versions and where it ran are recorded
    for entry in manifest.cells:
        assert CellConfig.model_validate(entry.config).cell_id() == entry.id
        assert entry.versions["strategy"] == 1 and entry.versions["trainer"] == TRAINER_VERSION
        assert entry.run.device == "cpu" and entry.run.precision == "fp32" and entry.run.torch_threads == 1
    assert manifest.components["strategy:entropy"].version == 1 and manifest.components["trainer"].sha256
    env = manifest.environment
    assert {"python", "torch", "cuda", "device_name", "os", "cpu_count", "threads"} <= set(env)
    assert env["cells_precisions"] == ["fp32"] and env["cells_threads"] == [1]
    assert manifest.plugins == []


def test_bundle_refuses_unfinished_cells_unless_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = micro_suite(tmp_path)
    cells = load_suite(suite).cells
    assert main(["run", str(suite), "--results", str(tmp_path / "r"), "--cell", cells[0].id, "--threads", "1",
                 "--quiet"]) == 0
    out = tmp_path / "partial.tar.gz"
    assert main(["bundle", str(suite), "--results", str(tmp_path / "r"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "3 unfinished or failed cell(s)" in err and "--allow-partial" in err and "pending" in err
    assert not out.exists()
    assert main(["bundle", str(suite), "--results", str(tmp_path / "r"), "--out", str(out), "--allow-partial"]) == 0
    manifest = Manifest.model_validate(manifest_of(unpack(out)))
    assert manifest.partial and [c.id for c in manifest.cells] == [cells[0].id]
    assert {m.id for m in manifest.missing} == {c.id for c in cells[1:]}
    assert main(["verify", str(out)]) == 0  # a partial bundle is a faithful one
    assert "PARTIAL" in capsys.readouterr().out


def test_bundle_of_nothing_finished_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = micro_suite(tmp_path)
    assert main(["bundle", str(suite), "--results", str(tmp_path / "r"), "--out", str(tmp_path / "b.tar.gz"),
                 "--allow-partial"]) == 2
    assert "no finished cell" in capsys.readouterr().err


def _tar_with(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode="w:gz") as tar:
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return sink.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(("member", "why"), [
    (_member("../escape.txt"), "climbs out"),
    (_member("/etc/passwd"), "absolute path"),
    (_member("cells", tarfile.SYMTYPE, "/etc"), "not a plain file"),
    (_member("cells/a.parquet", tarfile.LNKTYPE, "manifest.json"), "not a plain file"),
    (_member("dev", tarfile.CHRTYPE), "not a plain file"),
])
def test_unsafe_archives_are_refused_before_extraction(tmp_path: Path, member: tarfile.TarInfo, why: str) -> None:
    source = tmp_path / "evil.tar.gz"
    source.write_bytes(_tar_with(member, b"x"))
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(BundleError, match=why):
        extract_archive(source, dest)
    assert not any(dest.iterdir()) and not (tmp_path / "escape.txt").exists()


def test_duplicate_members_are_refused(tmp_path: Path) -> None:
    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode="w:gz") as tar:
        for data in (b"one", b"two"):
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    source = tmp_path / "twice.tar.gz"
    source.write_bytes(sink.getvalue())
    with pytest.raises(BundleError, match="appears twice"):
        extract_archive(source, tmp_path)
