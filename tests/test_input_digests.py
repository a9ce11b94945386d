"""Issue 20.2: the content of every input given by path (npz, image folder, init checkpoint) enters the cell id
and the rows, so changed data never gets the old data's results; a saved round state that does not fit its
cell's data is quarantined and the cell restarts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_suite
from PIL import Image

from benchmark import cli, digests, inputs
from benchmark.cell_state import CellState
from benchmark.config import CellConfig
from benchmark.errors import ConfigError
from benchmark.store import load_results

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def private_digest_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALB_CACHE_DIR", str(tmp_path / "alb-cache"))
    monkeypatch.setattr(digests, "_memory", {})
    monkeypatch.setattr(inputs, "_folders", {})


def _npz(path: Path, classes: int, size: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    y_train, y_test = np.arange(60) % classes, np.arange(20) % classes
    np.savez(path, x_train=rng.integers(0, 256, (60, size, size), dtype=np.uint8), y_train=y_train,
             x_test=rng.integers(0, 256, (20, size, size), dtype=np.uint8), y_test=y_test)


def _suite(directory: Path, dataset: str, init: str = "scratch") -> Path:
    return write_suite(directory, "bypath", f"""\
        name: bypath
        defaults:
          dataset: "{dataset}"
          backbone: small_cnn
          init: "{init}"
          budget: {{initial: 10, query: 5, rounds: 1}}
          training: {{epochs: 1, batch_size: 16}}
        matrix:
          strategy: [random, entropy]
        """)


def _cell(dataset: str, init: str = "scratch") -> CellConfig:
    return CellConfig.model_validate({"dataset": dataset, "backbone": "small_cnn", "strategy": "random", "init": init,
                                      "budget": {"initial": 10, "query": 5, "rounds": 1}})


def test_a_rewritten_npz_gets_new_cells_not_the_old_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, results = tmp_path / "data.npz", tmp_path / "results"
    _npz(data, classes=3, size=8)
    suite = _suite(tmp_path, f"npz:{data}")
    assert cli.main(["run", str(suite), "--results", str(results), "--quiet"]) == 0
    first = load_results(results / "bypath")
    assert first["input.dataset"].nunique() == 1 and first["input.dataset"].iloc[0].startswith("sha256:")
    _npz(data, classes=7, size=12)  # 3 -> 7 classes, 8 -> 12 px, same path
    capsys.readouterr()
    assert cli.main(["run", str(suite), "--results", str(results)]) == 0
    assert "2 run, 0 cached" in capsys.readouterr().out
    second = load_results(results / "bypath")
    assert set(second["input.dataset"]) != set(first["input.dataset"])
    assert set(second["cell_id"]).isdisjoint(first["cell_id"])


def test_one_relative_path_from_two_directories_names_two_datasets(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ids = []
    for name, seed in (("a", 0), ("b", 1)):
        (tmp_path / name).mkdir()
        _npz(tmp_path / name / "data.npz", classes=3, size=8, seed=seed)
        monkeypatch.chdir(tmp_path / name)
        ids.append(_cell("npz:data.npz").cell_id())
    assert ids[0] != ids[1]
    monkeypatch.chdir(tmp_path / "a")
    assert _cell("npz:data.npz").cell_id() == ids[0]  # same content, same id


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((10, 10), value, dtype=np.uint8)).save(path)


def test_an_image_folder_whose_image_changes_gets_a_new_id(tmp_path: Path) -> None:
    root = tmp_path / "folder"
    for split, count in (("train", 8), ("test", 2)):
        for label in ("cat", "dog"):
            for i in range(count):
                _png(root / split / label / f"{i}.png", 10 * i)
    spec = f"image_folder:{root}:8"
    before = _cell(spec).cell_id()
    assert _cell(spec).cell_id() == before
    _png(root / "train" / "cat" / "3.png", 255)
    os.utime(root / "train" / "cat" / "3.png", ns=(1, 1))
    inputs._folders.clear()  # a new process
    assert _cell(spec).cell_id() != before


def test_a_rewritten_checkpoint_gets_a_new_id_and_a_missing_one_a_clear_error(tmp_path: Path) -> None:
    ckpt = tmp_path / "w.pt"
    torch.save({"a": torch.zeros(2)}, ckpt)
    before = _cell("digits", f"checkpoint:{ckpt}").cell_id()
    torch.save({"a": torch.ones(2)}, ckpt)
    after = _cell("digits", f"checkpoint:{ckpt}")
    assert after.cell_id() != before
    assert inputs.input_columns(after)["input.init"].startswith("sha256:")
    ckpt.unlink()
    with pytest.raises(ConfigError, match="does not exist"):
        after.cell_id()
    os.mkfifo(ckpt)
    with pytest.raises(ConfigError, match="not a regular file"):  # never opened: a FIFO would block
        after.cell_id()


def test_a_digest_is_computed_once_per_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data.npz"
    _npz(data, classes=3, size=8)
    hashed: list[Path] = []
    real = digests.file_sha256
    monkeypatch.setattr(digests, "file_sha256", lambda p: hashed.append(p) or real(p))
    first = digests.file_digest(data, "x")
    monkeypatch.setattr(digests, "_memory", {})  # a new process: the on-disk cache answers
    assert digests.file_digest(data, "x") == first and len(hashed) == 1
    _npz(data, classes=3, size=8, seed=5)
    assert digests.file_digest(data, "x") != first and len(hashed) == 2


def test_registered_datasets_have_no_input_digest_and_keep_their_ids() -> None:
    assert inputs.input_digests(_cell("digits")) == {}


def test_a_round_state_that_does_not_fit_the_pool_is_quarantined(tmp_path: Path) -> None:
    cells = tmp_path / "cells" / ".work"
    cells.mkdir(parents=True)
    path = cells / "abc.pt"
    CellState("abc", labeled=np.array([1, 218]), pending=np.array([218]), pending_seconds=0.0).save(path)
    with pytest.warns(Warning, match="does not fit the cell's data: labeled index 218 is outside the pool of 60"):
        assert CellState.load(path, "abc", pool_size=60) is None
    assert not path.exists()
    CellState("abc", labeled=np.array([1, 2]), pending=np.array([2]), pending_seconds=0.0).save(path)
    loaded = CellState.load(path, "abc", pool_size=60)
    assert loaded is not None and loaded.labeled.tolist() == [1, 2]
