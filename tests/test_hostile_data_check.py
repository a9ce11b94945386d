"""Hostile datasets by path and hostile result files: validation names the problem, `alb check` never passes it.

Datasets: npz labels that are huge, gapped, negative, non-integer or of one class, empty test splits, truncated
arrays, zero-sized images, and image folders with one class or a corrupt / truncated image, are rejected when
the dataset is validated (dataset_info), not in every cell; an image folder is decoded once, into a cache the
loader reads. Check: accuracies that are NaN, infinite or out of [0, 1] are errors naming the file and row, and
a deleted cell makes its comparison "missing".
"""

from __future__ import annotations

import io
import json
import resource
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_suite
from PIL import Image

from benchmark import cli
from benchmark.data import dataset_info
from benchmark.data import image_sets as sets
from benchmark.errors import ConfigError

# ---------------------------------------------------------------- npz


def _npz(path: Path, y_train: object, y_test: object, x_train: np.ndarray | None = None,
         x_test: np.ndarray | None = None) -> str:
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if x_train is None:
        x_train = np.zeros((len(y_train), 8, 8), dtype=np.uint8)
    if x_test is None:
        x_test = np.zeros((len(y_test), 8, 8), dtype=np.uint8)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return f"npz:{path}"


def _rejected(spec: str, path: Path, key: str, pattern: str) -> None:
    """dataset_info(spec) is a ConfigError naming the file, the key and matching pattern."""
    with pytest.raises(ConfigError, match=pattern) as caught:
        dataset_info(spec)
    message = str(caught.value)
    assert str(path) in message and key in message, message


@pytest.mark.parametrize("label", [10**6, 10**9])
def test_npz_huge_label_is_rejected_before_anything_is_sized_by_it(tmp_path: Path, label: int) -> None:
    path = tmp_path / "huge.npz"
    _rejected(_npz(path, [0, 1, label, 1], [0, 1]), path, "y_train", f"label {label} .*at most")


def test_npz_labels_with_gaps_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "gaps.npz"
    _rejected(_npz(path, [0, 5, 5, 0], [5, 0]), path, "y_train", r"0\.\.C-1 without gaps.*1, 2, 3, 4")


def test_npz_single_class_and_empty_test_split_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "single.npz"
    _rejected(_npz(path, [0, 0, 0], [0]), path, "y_train", "single class")
    path = tmp_path / "no_test.npz"
    _rejected(_npz(path, [0, 1, 0], np.zeros(0, dtype=np.int64)), path, "x_test", "x_test is empty")


def test_npz_test_class_absent_from_training_is_warned(tmp_path: Path) -> None:
    spec = _npz(tmp_path / "unseen.npz", [0, 1, 0, 1], [1, 2])
    with pytest.warns(UserWarning, match=r"y_test has classes that y_train lacks \(2\)"):
        info = dataset_info(spec)
    assert info["num_classes"] == 3 and info["class_counts"] == [2, 2, 0]


def test_npz_negative_and_non_integer_labels_name_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "negative.npz"
    _rejected(_npz(path, [0, 1, 1], [0, -1]), path, "y_test", "negative label -1")
    path = tmp_path / "float.npz"
    _rejected(_npz(path, [0.0, 1.0, 1.0], [0, 1]), path, "y_train", "integer labels")
    path = tmp_path / "object.npz"  # np.load cannot read it without pickle: before, a raw ValueError
    _rejected(_npz(path, np.array([0, 1, "x"], dtype=object), [0, 1]), path, "y_train", "integer labels")


def test_npz_zero_sized_and_truncated_images_name_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "empty_images.npz"
    _rejected(_npz(path, [0, 1], [0, 1], x_train=np.zeros((2, 0, 0), dtype=np.uint8)), path, "x_train",
              r"has shape \(2, 0, 0\)")
    whole = io.BytesIO()
    np.save(whole, np.zeros((4, 8, 8), dtype=np.uint8))
    path = tmp_path / "truncated.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x_train.npy", whole.getvalue()[:-100])  # the header says 4 images, 2.4 are there
        for key, array in (("y_train", np.array([0, 1, 0, 1])), ("x_test", np.zeros((2, 8, 8), np.uint8)),
                           ("y_test", np.array([0, 1]))):
            buffer = io.BytesIO()
            np.save(buffer, array)
            archive.writestr(f"{key}.npy", buffer.getvalue())
    _rejected(f"npz:{path}", path, "x_train", "truncated")


# ---------------------------------------------------------------- image_folder


def _image(path: Path, seed: int, size: int = 12) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _folder(root: Path, classes: tuple[str, ...] = ("cat", "dog")) -> Path:
    for k, name in enumerate(classes):
        for i in range(3):
            _image(root / "train" / name / f"{i}.png", 10 * k + i)
        _image(root / "test" / name / "t.png", 100 + k)
    return root


def test_image_folder_with_one_class_is_rejected(tmp_path: Path) -> None:
    root = _folder(tmp_path / "one", classes=("cat",))
    _rejected(f"image_folder:{root}", root, "train", "1 class folder: classification needs at least two")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_image_folder_bad_image_is_named_at_validation(tmp_path: Path, damage: str) -> None:
    root = _folder(tmp_path / "pets")
    bad = root / "train" / "dog" / "1.png"
    data = bad.read_bytes()
    bad.write_bytes(b"not an image at all" if damage == "garbage" else data[: len(data) // 2])
    _rejected(f"image_folder:{root}", bad, "dog", "could not be decoded")


def test_image_folder_is_decoded_once_into_the_cache_the_loader_reads(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = _folder(tmp_path / "pets")
    spec = f"image_folder:{root}:8"
    files = sorted((root / "train").rglob("*.png"))
    expected = sets.decode_many(files, 8)
    assert dataset_info(spec)["class_counts"] == [3, 3]
    [cache] = (root / sets.FOLDER_CACHE).glob("*.npz")

    def no_decoding(*_: object, **__: object) -> np.ndarray:
        raise AssertionError("decoded again although validation cached the folder")

    from benchmark.data import decoding

    monkeypatch.setattr(decoding, "decode_many", no_decoding)  # where image_folder decoding calls it
    data = sets.load_parametric(spec)  # as a cell in another process: the cache, no decoding
    assert np.array_equal(data.train_x.numpy(), expected)
    assert data.train_y.tolist() == [0, 0, 0, 1, 1, 1] and data.test_y.tolist() == [0, 1]
    monkeypatch.undo()
    _image(root / "train" / "dog" / "0.png", 999)  # a changed image: a new cache, the old one removed
    fresh = sets.decode_image_folder(spec, root.resolve(), 8, keep=True)
    assert fresh is not None and not np.array_equal(fresh["x_train"], expected)
    [new_cache] = (root / sets.FOLDER_CACHE).glob("*.npz")
    assert new_cache != cache


def test_an_image_declaring_too_many_pixels_is_refused_before_decoding(tmp_path: Path) -> None:
    """A 20 kB PNG of 13000 x 13000 pixels (issue 20 item 12) would decode to over 500 MB."""
    root = _folder(tmp_path / "pets")
    bomb = root / "train" / "dog" / "1.png"
    Image.new("1", (13000, 13000)).save(bomb)  # one bit a pixel: a tiny file
    assert bomb.stat().st_size < 100_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with pytest.warns(Image.DecompressionBombWarning):  # PIL's own warning, from the header; no error
        _rejected(f"image_folder:{root}", bomb, "dog", f"declares 13000 x 13000 = 169000000 pixels, more than the "
                  f"{sets.DEFAULT_MAX_IMAGE_PIXELS} an image may have.*{sets.MAX_IMAGE_PIXELS_ENV}=N")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before < 300 * 2**20
    assert not (root / sets.FOLDER_CACHE).exists()


def test_the_pixel_bound_is_settable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sets.MAX_IMAGE_PIXELS_ENV, "143")  # the images are 12 x 12 = 144 pixels
    root = _folder(tmp_path / "small")
    _rejected(f"image_folder:{root}", root, "train", "declares 12 x 12 = 144 pixels, more than the 143")
    monkeypatch.setenv(sets.MAX_IMAGE_PIXELS_ENV, "144")
    assert dataset_info(f"image_folder:{_folder(tmp_path / 'exact')}")["n_train"] == 6
    for bad in ("lots", "0", "-5"):
        monkeypatch.setenv(sets.MAX_IMAGE_PIXELS_ENV, bad)
        with pytest.raises(ConfigError, match=f"{sets.MAX_IMAGE_PIXELS_ENV} must be a positive whole number"):
            dataset_info(f"image_folder:{_folder(tmp_path / bad)}")


# ---------------------------------------------------------------- alb check

SUITE = """\
name: hostile
defaults:
  dataset: digits
  backbone: small_cnn
  budget: {initial: 10, query: 10, rounds: 1}
  training: {epochs: 2, batch_size: 16, optimizer: {name: sgd, lr: 0.05}}
matrix:
  strategy: [random, entropy]
  seed: [0, 1]
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The suite, its results (4 cells) and a baseline of them."""
    root = tmp_path_factory.mktemp("hostile_check")
    suite = write_suite(root, "hostile", SUITE)
    results = root / "results"
    assert cli.main(["run", str(suite), "--results", str(results), "--threads", "1", "--quiet"]) == 0
    baseline = root / "baseline.json"
    assert cli.main(["check", str(suite), "--results", str(results), "--save-baseline", str(baseline)]) == 0
    return suite, results, baseline


def _copy(results: Path, target: Path) -> list[Path]:
    copied = []
    for path in sorted(results.rglob("*.parquet")):
        if any(part.startswith(".") for part in path.relative_to(results).parts):
            continue
        dest = target / path.relative_to(results)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(path.read_bytes())
        copied.append(dest)
    assert len(copied) == 4
    return copied


def _set_accuracy(path: Path, row: int, value: float) -> None:
    table = pq.read_table(path)
    accuracies = table.column("accuracy").to_pylist()
    accuracies[row] = value
    i = table.schema.get_field_index("accuracy")
    pq.write_table(table.set_column(i, table.schema.field(i), pa.array(accuracies, pa.float64())), path)


def _check(suite: Path, results: Path, baseline: Path, capsys: pytest.CaptureFixture[str],
           *extra: str) -> tuple[int, str, str]:
    rc = cli.main(["check", str(suite), "--results", str(results), "--baseline", str(baseline), *extra])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 1.5, -0.1, 1e308])
def test_out_of_range_accuracy_is_an_error_naming_the_file_and_row(
        finished: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], value: float) -> None:
    suite, results, baseline = finished
    cells = _copy(results, tmp_path)
    _set_accuracy(cells[2], 1, value)
    rc, out, err = _check(suite, tmp_path, baseline, capsys)
    assert rc == cli.EXIT_USAGE, out + err
    assert f"{cells[2]} row 1: accuracy {value!r}" in err and "outside [0, 1]" in err
    assert "improved" not in out and "pass" not in out  # no verdict at all
    assert cli.main(["check", str(suite), "--results", str(tmp_path), "--save-baseline",
                     str(tmp_path / "b.json")]) == cli.EXIT_USAGE
    assert not (tmp_path / "b.json").exists()


@pytest.mark.parametrize("value", [float("nan"), 1e308, -0.5])
def test_out_of_range_baseline_mean_is_an_error(finished: tuple[Path, Path, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str], value: float) -> None:
    suite, results, baseline = finished
    payload = json.loads(baseline.read_text())
    payload["entries"][0]["mean"] = value
    doctored = tmp_path / "baseline.json"
    doctored.write_text(json.dumps(payload))
    rc, _, err = _check(suite, results, doctored, capsys)
    assert rc == cli.EXIT_USAGE and f"entry '{payload['entries'][0]['id']}'" in err and "[0, 1]" in err


def test_a_deleted_cell_makes_its_comparisons_missing(finished: tuple[Path, Path, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from benchmark.check import run_check
    from benchmark.store import read_cell_metadata

    suite, results, baseline = finished
    cells = _copy(results, tmp_path)
    meta = read_cell_metadata(cells[0])
    strategy, seed = meta["config"]["strategy"], meta["config"]["seed"]
    cells[0].unlink()
    outcome = run_check(suite, tmp_path, baseline, 0.01, 2.0, published=False)
    affected = [c for c in outcome.comparisons if c.reference.strategy == strategy]
    assert len(affected) == 2 and all(c.status == "missing" for c in affected)  # 2 label counts
    assert all(f"1 of 2 cells unfinished: strategy={strategy} seed={seed}" in c.reason for c in affected)
    assert all(c.partial == "pass" and c.seeds == 1 for c in affected)
    assert all(c.status == "pass" for c in outcome.comparisons if c.reference.strategy != strategy)
    rc, out, _ = _check(suite, tmp_path, baseline, capsys)
    assert rc == 1 and "2 missing" in out
    rc, out, _ = _check(suite, tmp_path, baseline, capsys, "--allow-missing")
    assert rc == 0 and "2 missing" in out


def test_allow_missing_still_fails_a_regression_of_the_seeds_present(
        finished: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmark.store import read_cell_metadata

    suite, results, baseline = finished
    cells = _copy(results, tmp_path)
    strategy = read_cell_metadata(cells[0])["config"]["strategy"]
    cells[0].unlink()
    for cell in cells[1:]:
        if read_cell_metadata(cell)["config"]["strategy"] == strategy:
            for row in range(2):
                _set_accuracy(cell, row, 0.0)
    rc, out, _ = _check(suite, tmp_path, baseline, capsys, "--allow-missing")
    assert rc == 1 and "2 missing" in out


# ---------------------------------------------------------------- hostile baselines (issue 20 item 13)


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("setting", [1, 2], "entries[0] (id '{id}').setting: Input should be a valid dictionary (got [1, 2])"),
    ("strategy", ["entropy"], "entries[0] (id '{id}').strategy: Input should be a valid string (got ['entropy'])"),
    ("mean", "x", "entries[0] (id '{id}').mean: Input should be a valid number (got 'x')"),
    ("runs", True, "entries[0] (id '{id}').runs: Input should be a valid integer (got True)"),
    ("setting", {"pool_subset": "x"}, "setting pool_subset must be a count of images, got 'x'"),
    ("setting", {"initial_strategy": 3}, "setting initial_strategy must be a strategy name, got 3"),
    ("colour", "red", "entries[0] (id '{id}').colour: Extra inputs are not permitted"),
])
def test_a_baseline_entry_of_the_wrong_shape_is_a_message(finished: tuple[Path, Path, Path], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str], key: str,
                                                           value: object, expected: str) -> None:
    suite, results, baseline = finished
    payload = json.loads(baseline.read_text())
    payload["entries"][0][key] = value
    doctored = tmp_path / "baseline.json"
    doctored.write_text(json.dumps(payload))
    rc, _, err = _check(suite, results, doctored, capsys)
    assert rc == cli.EXIT_USAGE and "Traceback" not in err, err
    assert f"{doctored} is not a valid alb baseline file" in err and "--save-baseline" in err
    assert expected.format(id=payload["entries"][0]["id"]) in err, err


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"entries": ' + "[" * 100_000 + "]" * 100_000 + "}",
                                  "[1, 2]", '{"entries": 3}', "not json", '{"entries": [7]}'])
def test_a_baseline_that_is_not_one_is_a_message(finished: tuple[Path, Path, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str], text: str) -> None:
    suite, results, _ = finished
    doctored = tmp_path / "baseline.json"
    doctored.write_text(text)
    rc, _, err = _check(suite, results, doctored, capsys)
    assert rc == cli.EXIT_USAGE and "Traceback" not in err and len(err) < 2000, err
    assert f"{doctored} is not" in err and "alb baseline file" in err


def test_a_baseline_id_with_markup_and_escapes_is_shown_as_written(finished: tuple[Path, Path, Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    suite, results, baseline = finished
    payload = json.loads(baseline.read_text())
    payload["entries"][0]["id"] = "[/]x[bold]y\x1b[2J\u202eevil"
    doctored = tmp_path / "baseline.json"
    doctored.write_text(json.dumps(payload))
    rc, out, err = _check(suite, results, doctored, capsys)
    assert rc == 0, err
    assert "[/]x[bold]y\\x1b[2J\\u202eevil" in out and "\x1b" not in out and "\u202e" not in out
