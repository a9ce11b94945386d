"""`alb leaderboard`: a static site from real bundles; merged cells, disagreeing cells, separate protocols."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from bundle_kit import cell_names, edit_cell, edit_manifest, micro_suite, repack, run_and_bundle, unpack

from benchmark.cli import main


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ada and bob ran the same suite on the same setup (identical results); cara a longer budget."""
    folder = tmp_path_factory.mktemp("boards")
    suite = micro_suite(folder)
    return {"ada": run_and_bundle(folder, suite, folder / "ada.tar.gz", "--submitter", "Ada", results="a"),
            "bob": run_and_bundle(folder, suite, folder / "bob.tar.gz", "--submitter", "Bob", results="b"),
            "cara": run_and_bundle(folder, micro_suite(folder, "longer", rounds=2), folder / "cara.tar.gz",
                                   "--submitter", "Cara", results="c")}


def _site(out: Path, *paths: Path) -> dict[str, Any]:
    assert main(["leaderboard", *map(str, paths), "--out", str(out)]) == 0
    data: dict[str, Any] = json.loads((out / "leaderboard.json").read_text())
    return data


def _numbers(value: Any) -> set[float]:
    if isinstance(value, bool) or value is None:
        return set()
    if isinstance(value, int | float):
        return {round(float(value), 6)}
    if isinstance(value, dict):
        return set().union(*(_numbers(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_numbers(v) for v in value)) if value else set()
    return set()


def _board_cells(page: str) -> list[list[str]]:
    body = page.split("<tbody>")[1].split("</tbody>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)
    return [re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S) for row in rows]


def test_site_is_rendered_and_json_has_every_number(bundles: dict[str, Path], tmp_path: Path) -> None:
    data = _site(tmp_path / "site", bundles["ada"])
    assert (tmp_path / "site" / "index.html").is_file()
    (board,) = data["boards"]
    page = (tmp_path / "site" / f"board-{board['slug']}.html").read_text()
    index = (tmp_path / "site" / "index.html").read_text()
    assert f"board-{board['slug']}.html" in index and "leaderboard.json" in index and "Ada" in index
    digest = data["bundles"][0]["digest"]
    assert digest[:16] in index and "integrity checked" in index
    shown = _numbers(board)
    rows = _board_cells(page)
    assert [r[1] for r in rows] == [e["strategy"] for e in board["entries"]]
    for row in rows:
        assert "Ada" in row[11] and digest[:12] in row[12] and row[13] == "integrity checked"
        for cell in row[:11]:  # every number of the statistics columns is in leaderboard.json
            for number in re.findall(r"[-+]?\d+(?:\.\d+)?(?:e-?\d+)?", re.sub(r"<[^>]+>", " ", cell)):
                assert round(float(number), 6) in shown, (number, cell)
    ranks = [e["rank"] for e in board["entries"]]
    means = [e["aubc"] for e in board["entries"]]
    assert means == sorted(means, reverse=True) and ranks[0] == 1  # ranked by mean AUBC


def test_two_bundles_of_the_same_cells_merge_as_runs(bundles: dict[str, Path], tmp_path: Path) -> None:
    data = _site(tmp_path / "site", bundles["ada"], bundles["bob"])
    (board,) = data["boards"]
    assert data["merged_cells"] == 4 and not data["disagreeing_cells"]
    for entry in board["entries"]:
        assert entry["seeds"] == 2 and entry["cells_with_several_runs"] == 2
        assert {b["submitter"] for b in entry["bundles"]} == {"Ada", "Bob"}
    alone = _site(tmp_path / "alone", bundles["ada"])["boards"][0]["entries"]
    assert [(e["strategy"], e["aubc"]) for e in alone] == [(e["strategy"], e["aubc"]) for e in board["entries"]]
    page = (tmp_path / "site" / f"board-{board['slug']}.html").read_text()
    assert "merged from several bundles" in page and "Ada, Bob" in page


def test_disagreeing_cells_are_flagged_and_left_out(bundles: dict[str, Path], tmp_path: Path) -> None:
    files = unpack(bundles["bob"])
    name = cell_names(files)[0]
    cell = name.removeprefix("cells/").removesuffix(".parquet")
    doctored = {**files, name: edit_cell(files[name], "accuracy", 1, 0.95)}  # a faithful-looking other result
    bob = repack(doctored, tmp_path / "bob.tar.gz", reseal=True)
    data = _site(tmp_path / "site", bundles["ada"], bob)
    (flag,) = data["disagreeing_cells"]
    assert flag["cell_id"] == cell and "round 1: accuracy" in flag["difference"]
    (board,) = data["boards"]
    assert [d["cell_id"] for d in board["disagreeing_cells"]] == [cell]
    assert all(cell not in e["cells"] for e in board["entries"])
    assert sorted(e["seeds"] for e in board["entries"]) == [1, 2]
    page = (tmp_path / "site" / f"board-{board['slug']}.html").read_text()
    assert f"cell <code>{cell}</code>" in page and "left out of this board" in page


def test_different_protocols_and_versions_are_never_ranked_together(bundles: dict[str, Path], tmp_path: Path) -> None:
    # Dan ran the same suite with another version of the trainer (so his cells have other ids)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("benchmark.versions.TRAINER_VERSION", 7)
        dan = run_and_bundle(tmp_path, micro_suite(tmp_path), tmp_path / "dan.tar.gz", "--submitter", "Dan")
    data = _site(tmp_path / "site", bundles["ada"], bundles["cara"], dan)
    assert len(data["boards"]) == 3 and not data["disagreeing_cells"]
    for board in data["boards"]:
        submitters = {b["submitter"] for e in board["entries"] for b in e["bundles"]}
        assert len(submitters) == 1  # no board mixes two of these bundles
        assert board["differs_from_other_boards_in"]
    keys = [k for b in data["boards"] for k in b["differs_from_other_boards_in"]]
    assert "budget.rounds" in keys and "version.trainer" in keys
    index = (tmp_path / "site" / "index.html").read_text()
    assert "ranked apart from the other digits / tiny_cnn boards" in index and "version.trainer" in index
    status = {s["submitter"]["name"]: s["status"] for s in data["bundles"]}
    assert status["Dan"].startswith("unverified: 4 cell(s) of component versions this alb does not know")
    assert status["Ada"] == status["Cara"] == "integrity checked"
    page = next((tmp_path / "site").glob("board-*.html")).read_text()
    assert "Not ranked together with" in page


def test_one_id_with_two_version_sets_is_a_disagreement(bundles: dict[str, Path], tmp_path: Path) -> None:
    files = unpack(bundles["bob"])

    def newer_trainer(manifest: dict[str, Any]) -> None:
        manifest["cells"][0]["versions"]["trainer"] = 7

    first = json.loads(files["manifest.json"])["cells"][0]["file"]
    files[first] = edit_cell(edit_cell(files[first], "version.trainer", 0, 7), "version.trainer", 1, 7)
    bob = repack(edit_manifest(files, newer_trainer), tmp_path / "bob.tar.gz", reseal=True)
    data = _site(tmp_path / "site", bundles["ada"], bob)
    (flag,) = data["disagreeing_cells"]
    assert flag["difference"].startswith("component versions") and f"cells/{flag['cell_id']}.parquet" == first


def test_tampered_bundles_are_listed_but_not_ranked(bundles: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    files = unpack(bundles["bob"])
    name = cell_names(files)[0]
    naive = repack({**files, name: edit_cell(files[name], "accuracy", 1, 0.95)}, tmp_path / "naive.tar.gz")
    data = _site(tmp_path / "site", bundles["ada"], naive)
    bob = next(s for s in data["bundles"] if s["submitter"]["name"] == "Bob")
    assert not bob["ranked"] and "sha256 differs" in bob["rejected_because"][0]
    assert all(b["submitter"] == "Ada" for e in data["boards"][0]["entries"] for b in e["bundles"])
    junk = tmp_path / "junk.tar.gz"
    junk.write_text("no")
    assert main(["leaderboard", str(junk), "--out", str(tmp_path / "x")]) == 2
    assert "not a gzip tar archive" in capsys.readouterr().err


def test_verification_record_is_shown(bundles: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "ada.tar.gz"
    copy.write_bytes(bundles["ada"].read_bytes())
    assert main(["verify", str(copy), "--rerun", "1", "--record"]) == 0
    data = _site(tmp_path / "site", copy)
    assert data["bundles"][0]["status"] == "integrity checked; 1 of 4 cells rerun and matching (identical)"
    page = next((tmp_path / "site").glob("board-*.html")).read_text()
    assert "1 of 4 cells rerun and matching" in page
