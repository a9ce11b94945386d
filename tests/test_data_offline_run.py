"""`alb run` resolves the data of its pending cells before any cell starts: offline, one message and exit 2; with the
files (a small CIFAR-10 archive in the real format) fetched from a mirror or present, the cells run."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, write_suite
from data_server import data_server

from benchmark import cli
from benchmark.data import DATASETS
from benchmark.data import cards as cards_module
from benchmark.data.fetch import MIRROR_ENV

PAPER_SUITE = REPO / "suites" / "cifar10.yaml"
N_TRAIN, N_TEST = 5 * 8, 10  # 8 images per data_batch


def cifar10_archive() -> tuple[bytes, dict[str, np.ndarray]]:
    """cifar-10-python.tar.gz as the authors publish it (pickled dicts of uint8 rows), only smaller."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    arrays: dict[str, np.ndarray] = {}
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, n in [*((f"data_batch_{i}", N_TRAIN // 5) for i in range(1, 6)), ("test_batch", N_TEST)]:
            data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
            labels = [int(c) for c in np.arange(n) % 10]
            arrays[name] = data
            body = pickle.dumps({"batch_label": name, "labels": labels, "data": data, "filenames": []})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue(), arrays


@pytest.fixture
def small_cifar10(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """The card's checksum and the registry's sizes of CIFAR-10, for the small archive."""
    archive, _ = cifar10_archive()
    card = cards_module.CARDS["cifar10"]
    file = dataclasses.replace(card.files[0], checksum=f"md5:{hashlib.md5(archive).hexdigest()}")
    monkeypatch.setitem(cards_module.CARDS, "cifar10", dataclasses.replace(card, files=(file,)))
    entry = DATASETS._entries["cifar10"]
    info = dataclasses.replace(entry.info, n_train=N_TRAIN, n_test=N_TEST)
    monkeypatch.setitem(DATASETS._entries, "cifar10", dataclasses.replace(entry, info=info))
    return archive


SMALL_SUITE = """\
name: small_cifar10
defaults:
  dataset: cifar10
  backbone: tiny_cnn
  budget: {initial: 10, query: 10, rounds: 1}
  training: {epochs: 1, batch_size: 16, optimizer: {name: sgd, lr: 0.05}}
matrix:
  strategy: [random, entropy]
"""


@pytest.mark.parametrize("executor", [[], ["--workers", "2"], ["--executor", "slurm"]])
def test_offline_paper_suite_fails_once_before_any_cell(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        executor: list[str]) -> None:
    results = tmp_path / "results"
    code = cli.main(["run", str(PAPER_SUITE), "--data-dir", str(tmp_path / "data"), "--results", str(results),
                     *executor])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("alb: error:") == 1 and "nothing was started" in err
    assert "http://127.0.0.1:9/cifar-10-python.tar.gz" in err
    assert f"place it as {tmp_path / 'data' / 'cifar-10-python.tar.gz'}" in err
    assert f"alb data fetch {PAPER_SUITE}" in err
    assert not list(results.rglob("*.failed.log")) and not list(results.rglob("*.parquet"))


def test_damaged_archive_is_reported_like_a_missing_one(tmp_path: Path, small_cifar10: bytes,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "cifar-10-python.tar.gz").write_bytes(small_cifar10[:-100])  # truncated
    suite = write_suite(tmp_path, "small_cifar10", SMALL_SUITE)
    assert cli.main(["run", str(suite), "--data-dir", str(data), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "cifar-10-python.tar.gz is damaged or truncated" in err and "nothing was started" in err
    assert not (data / "cifar-10-batches-py").exists()


def test_suite_runs_on_files_fetched_from_a_mirror_then_offline(tmp_path: Path, small_cifar10: bytes,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    data, results = tmp_path / "data", tmp_path / "results"
    suite = write_suite(tmp_path, "small_cifar10", SMALL_SUITE)
    with data_server() as server:
        server.files["cifar-10-python.tar.gz"] = small_cifar10
        monkeypatch.setenv(MIRROR_ENV, server.url)
        assert cli.main(["data", "fetch", str(suite), "--data-dir", str(data)]) == 0
        assert server.gets["cifar-10-python.tar.gz"] == 1
    out = capsys.readouterr().out
    assert f"cifar10: {data / 'cifar-10-python.tar.gz'}" in out and "md5 verified" in out
    monkeypatch.setenv(MIRROR_ENV, "http://127.0.0.1:9")  # offline from here on
    assert cli.main(["run", str(suite), "--data-dir", str(data), "--results", str(results)]) == 0
    assert "2 run, 0 cached, 0 failed" in capsys.readouterr().out
    assert cli.main(["data", "list", "--data-dir", str(data)]) == 0
    listing = capsys.readouterr().out
    assert "cifar10: CIFAR-10 [present," in listing and "md5 verified" in listing and "mnist: MNIST [absent]" in listing


def test_loaded_cifar10_matches_the_archive(tmp_path: Path, small_cifar10: bytes) -> None:
    from benchmark.data.torchvision_sets import load_cifar10

    (tmp_path / "cifar-10-python.tar.gz").write_bytes(small_cifar10)
    _, arrays = cifar10_archive()
    data = load_cifar10(tmp_path)
    train = np.concatenate([arrays[f"data_batch_{i}"] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    assert np.array_equal(data.train_x.numpy(), train)
    assert np.array_equal(data.test_x.numpy(), arrays["test_batch"].reshape(-1, 3, 32, 32))
    assert data.test_y.tolist() == [i % 10 for i in range(N_TEST)]


def test_a_failed_task_names_its_traceback_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmark.executors.common import DriverProgress, _TaskReporter
    from benchmark.progress import PlainReporter
    from benchmark.store import SuiteStore
    from benchmark.suite import load_suite

    suite = load_suite(write_suite(tmp_path, "small_cifar10", SMALL_SUITE))
    store = SuiteStore(tmp_path / "r", suite.name)
    cell = suite.cells[0]
    task = _TaskReporter(cell.id)
    task.cell_failed(cell, ValueError("boom"), store.failed_path(cell.id))
    with DriverProgress(suite, store, 0, lambda total, cached: PlainReporter(total, cached)) as progress:
        progress.record(task.report)
    err = capsys.readouterr().err
    assert err.count("(traceback in") == 1 and "ValueError: boom" in err and "RuntimeError" not in err
