"""`alb verify`: real bundles, doctored in every way the issue names, are each caught; exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bundle_kit import cell_names, edit_cell, edit_manifest, manifest_of, micro_suite, repack, run_and_bundle, unpack

from benchmark.bundles.manifest import CellRun
from benchmark.bundles.rerun import chosen_cells
from benchmark.bundles.rows import Rows, row_problems, runs_difference, same_setup
from benchmark.bundles.verify import record_path, verify_bundle
from benchmark.cli import main


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("verify")
    return run_and_bundle(folder, micro_suite(folder), folder / "micro.tar.gz", "--submitter", "Ada")


@pytest.fixture
def files(bundle: Path) -> dict[str, bytes]:
    return unpack(bundle)


def _verify(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["verify", str(path), *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_untouched_bundle_verifies_and_reruns_identically(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _verify(bundle, capsys, "--rerun", "4", "--seed", "3", "--record")
    assert code == 0, out
    assert "verified: integrity checked; 4 of 4 cells rerun and matching (identical)" in out
    assert out.count("identical setup, compared exactly): matches") == 4
    record = json.loads(record_path(bundle).read_text())
    assert record["ok"] and record["bundle_digest"] in out and len(record["reruns"]) == 4


def test_changed_accuracy_is_caught_by_hash_and_by_rerun(files: dict[str, bytes], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    name = cell_names(files)[0]
    doctored = {**files, name: edit_cell(files[name], "accuracy", 1, 0.99)}
    code, out = _verify(repack(doctored, tmp_path / "naive.tar.gz"), capsys)
    assert code == 1 and f"{name}: its sha256 differs" in out
    # a careful forger recomputes every hash: the values still pass every consistency check, a rerun catches it
    resealed = repack(doctored, tmp_path / "resealed.tar.gz", reseal=True)
    code, out = _verify(resealed, capsys)
    assert code == 0
    code, out = _verify(resealed, capsys, "--rerun", "4")
    cell = name.removeprefix("cells/").removesuffix(".parquet")
    assert code == 1 and f"rerun of cell {cell}" in out and "DOES NOT REPRODUCE at round 1: accuracy 0.990000" in out


def test_impossible_rows_are_caught_even_when_resealed(files: dict[str, bytes], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    name = cell_names(files)[1]
    for column, value, message in (("accuracy", 1.5, "round 1: accuracy 1.5 is not in [0, 1]"),
                                   ("n_labeled", 25, "round 1: n_labeled 25, the budget gives 20"),
                                   ("selected", [0, 1, 2, 3, 4, 5, 6, 7, 8, 100000], "outside the pool of 1347")):
        doctored = {**files, name: edit_cell(files[name], column, 1, value)}
        code, out = _verify(repack(doctored, tmp_path / "b.tar.gz", reseal=True), capsys)
        assert code == 1 and f"{name}: cell" in out and message in out, out


def test_changed_config_is_caught(files: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def more_epochs(manifest: dict[str, Any]) -> None:
        manifest["cells"][0]["config"]["training"]["epochs"] = 5

    doctored = edit_manifest(files, more_epochs)
    code, out = _verify(repack(doctored, tmp_path / "naive.tar.gz"), capsys)
    assert code == 1 and "manifest.json: its digest does not match" in out
    code, out = _verify(repack(doctored, tmp_path / "resealed.tar.gz", reseal=True), capsys)
    cell = manifest_of(files)["cells"][0]["id"]
    assert code == 1 and f"cell {cell}: the id re-derived from its resolved config is" in out


def test_swapped_cell_is_caught(files: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = cell_names(files)[:2]
    doctored = {**files, a: files[b]}  # cell b's results under cell a's name
    code, out = _verify(repack(doctored, tmp_path / "naive.tar.gz"), capsys)
    assert code == 1 and f"{a}: its sha256 differs" in out
    code, out = _verify(repack(doctored, tmp_path / "resealed.tar.gz", reseal=True), capsys)
    other = b.removeprefix("cells/").removesuffix(".parquet")
    assert code == 1 and f"its metadata names cell '{other}'" in out


def test_added_file_is_caught(files: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doctored = {**files, "cells/0000000000000000.parquet": files[cell_names(files)[0]], "notes.txt": b"hi"}
    code, out = _verify(repack(doctored, tmp_path / "naive.tar.gz"), capsys)
    assert code == 1 and "notes.txt: not listed in the manifest (a file was added)" in out
    assert "cells/0000000000000000.parquet: not listed" in out
    code, out = _verify(repack(doctored, tmp_path / "resealed.tar.gz", reseal=True), capsys)
    assert code == 1 and "notes.txt: listed in the manifest but neither the suite file nor a cell" in out


def test_removed_cell_is_caught(files: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = cell_names(files)[0]
    doctored = {n: d for n, d in files.items() if n != name}
    code, out = _verify(repack(doctored, tmp_path / "b.tar.gz"), capsys)
    assert code == 1 and f"{name}: listed in the manifest but not in the bundle" in out


def test_not_a_bundle_exits_2(files: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar at all")
    code, out = _verify(junk, capsys)
    assert code == 2 and "not a gzip tar archive" in out and "Traceback" not in out
    code, out = _verify(tmp_path / "absent.tar.gz", capsys)
    assert code == 2 and "no such file" in out
    without = repack({n: d for n, d in files.items() if n != "manifest.json"}, tmp_path / "nomanifest.tar.gz")
    code, out = _verify(without, capsys)
    assert code == 2 and "no manifest.json" in out
    broken = repack({**files, "manifest.json": b'{"format": "alb-bundle", "cells": 3}'}, tmp_path / "bad.tar.gz")
    code, out = _verify(broken, capsys)
    assert code == 2 and "manifest.json key" in out


def test_unknown_component_versions_are_flagged_not_failed(files: dict[str, bytes], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    def newer_strategy(manifest: dict[str, Any]) -> None:
        manifest["cells"][0]["versions"]["strategy"] = 7
        manifest["components"]["strategy:entropy"]["version"] = 7

    name = manifest_of(files)["cells"][0]["file"]
    newer = edit_cell(edit_cell(files[name], "version.strategy", 0, 7), "version.strategy", 1, 7)
    doctored = repack(edit_manifest({**files, name: newer}, newer_strategy), tmp_path / "b.tar.gz", reseal=True)
    verification = verify_bundle(doctored, rerun=4)
    assert verification.integrity.ok
    assert any("component versions unknown to this alb: strategy 7 (here 1)" in f for f in verification.integrity.flags)
    assert any("other versions than this alb's: strategy:entropy v7" in f for f in verification.integrity.flags)
    assert len(verification.reruns) == 3 and len(verification.skipped_reruns) == 1  # cannot rerun another version
    assert "flag(s)" in verification.status


def test_rows_checks_and_comparisons_are_pure() -> None:
    rows = Rows([0, 1], [10, 20], [0.5, 0.6], [None, None], [list(range(10)), list(range(10, 20))])
    budget = {"initial": 10, "query": 10, "rounds": 1}
    assert row_problems(rows, budget, 20) == []
    assert row_problems(rows, budget, 15) == ["round 1: selected indices outside the pool of 15 images: "
                                              "[15, 16, 17, 18, 19]"]
    repeat = Rows([0, 1], [10, 20], [0.5, 0.6], [None, None], [list(range(10)), list(range(5, 15))])
    assert "selected twice" in row_problems(repeat, budget, None)[0]
    assert row_problems(Rows([0, 2], [10, 20], [0.5, 0.6], [None] * 2, [[]] * 2), budget, None)[0].startswith(
        "rounds are [0, 2]")
    near = Rows([0, 1], [10, 20], [0.5, 0.62], [None, None], [list(range(10)), list(range(20, 30))])
    assert runs_difference(rows, rows, exact=True) is None
    assert runs_difference(rows, near, exact=True) == "round 1: different samples selected"
    assert runs_difference(rows, near, exact=False, tolerance=0.05) is None
    assert "expected within 0.01" in str(runs_difference(rows, near, exact=False, tolerance=0.01))
    cpu1 = CellRun(device="cpu", precision="fp32", torch_threads=1)
    assert same_setup(cpu1, cpu1) and not same_setup(cpu1, CellRun(device="cpu", precision="fp32", torch_threads=2))
    assert same_setup(CellRun(device="cuda:0", precision="bf16"), CellRun(device="cuda", precision="bf16"))
    assert chosen_cells(list("abcdef"), 3, 1) == chosen_cells(list("fedcba"), 3, 1)
    assert chosen_cells(list("ab"), 5, 0) == ["a", "b"]


def test_garbage_cell_file_is_a_problem_not_a_traceback(files: dict[str, bytes], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    name = cell_names(files)[0]
    doctored = repack({**files, name: b"PAR1 garbage PAR1"}, tmp_path / "b.tar.gz", reseal=True)
    code, out = _verify(doctored, capsys)
    assert code == 1 and f"{name}: cell" in out and "cannot be read" in out and "Traceback" not in out


def test_rows_of_a_detection_cell_are_judged_by_their_map() -> None:
    """Detection rows carry map_50 (mAP@0.5), not accuracy: verification and merging read that metric."""
    records = [{"round": r, "n_labeled": 10 * (r + 1), "map_50": m, "selected": list(range(10 * r, 10 * r + 10))}
               for r, m in enumerate([0.1, 1.5])]
    rows = Rows.of(records)
    assert rows.metric == "map_50" and rows.accuracy == [0.1, 1.5]
    assert row_problems(rows, {"rounds": 1, "initial": 10, "query": 10}, 100) == [
        "round 1: map_50 1.5 is not in [0, 1]"]
