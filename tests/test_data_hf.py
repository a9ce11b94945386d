"""hf: datasets from a local copy (save_to_disk folder, parquet files): labels and images match the source, the
converted arrays' digest enters cell ids, and a cell runs on it. Offline: the `datasets` library reads local files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import write_suite

datasets = pytest.importorskip("datasets")

from benchmark import cli  # noqa: E402
from benchmark.data import dataset_info  # noqa: E402
from benchmark.data.loading import load_dataset  # noqa: E402
from benchmark.errors import ConfigError  # noqa: E402
from benchmark.inputs import dataset_digest  # noqa: E402


def source(n_train: int = 24, n_test: int = 9) -> object:
    from PIL import Image

    rng = np.random.default_rng(0)
    features = datasets.Features({"img": datasets.Image(), "fine": datasets.ClassLabel(names=["a", "b", "c"])})

    def split(n: int) -> object:
        images = [Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)) for _ in range(n)]
        return datasets.Dataset.from_dict({"img": images, "fine": [(i * 7) % 3 for i in range(n)]}, features=features)

    return datasets.DatasetDict({"train": split(n_train), "validation": split(n_test)})


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALB_CACHE_DIR", str(tmp_path / "cache"))


def test_saved_dataset_matches_its_source_and_has_a_content_identity(tmp_path: Path) -> None:
    dd = source()
    dd.save_to_disk(str(tmp_path / "saved"))
    spec = f"hf:{tmp_path / 'saved'}?image=img&label=fine&test=validation"
    info = dataset_info(spec)
    assert (info["n_train"], info["n_test"], info["num_classes"], info["image_size"]) == (24, 9, 3, 8)
    data = load_dataset(spec, tmp_path)
    for split, x, y in (("train", data.train_x, data.train_y), ("validation", data.test_x, data.test_y)):
        assert y.tolist() == dd[split]["fine"]
        assert np.array_equal(x.numpy().transpose(0, 2, 3, 1), np.stack([np.asarray(im) for im in dd[split]["img"]]))
    digest = dataset_digest(spec)
    assert digest is not None and len(digest) == 64
    # the same data as parquet files: another source, the same arrays
    (tmp_path / "pq").mkdir()
    for split in ("train", "validation"):
        dd[split].to_parquet(str(tmp_path / "pq" / f"{split}-00000-of-00001.parquet"))
    assert dataset_digest(f"hf:{tmp_path / 'pq'}?image=img&label=fine&test=validation") == digest


def test_missing_columns_and_splits_are_named(tmp_path: Path) -> None:
    source().save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(ConfigError, match=r"no column 'image' \(columns: img, fine\)"):
        dataset_info(f"hf:{tmp_path / 'saved'}?test=validation")
    with pytest.raises(ConfigError, match=r"no split 'test' \(splits: train, validation\)"):
        dataset_info(f"hf:{tmp_path / 'saved'}?image=img&label=fine")
    with pytest.raises(ConfigError, match="unknown or empty option 'colour'"):
        dataset_info(f"hf:{tmp_path / 'saved'}?colour=red")


def test_a_cell_runs_on_an_hf_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source().save_to_disk(str(tmp_path / "saved"))
    suite = write_suite(tmp_path, "hf_suite", f"""\
        name: hf_suite
        defaults:
          dataset: "hf:{tmp_path / 'saved'}?image=img&label=fine&test=validation"
          backbone: tiny_cnn
          budget: {{initial: 6, query: 6, rounds: 1}}
          training: {{epochs: 1, batch_size: 8, optimizer: {{name: sgd, lr: 0.05}}}}
        matrix:
          strategy: [random]
        """)
    assert cli.main(["run", str(suite), "--results", str(tmp_path / "r"), "--data-dir", str(tmp_path)]) == 0
    assert "1 run, 0 cached, 0 failed" in capsys.readouterr().out
