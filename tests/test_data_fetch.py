"""Fetching dataset files: real downloads over a local HTTP server by several processes at once, a download killed
midway, damaged and truncated files, the data cards' checksums against torchvision's."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from conftest import REPO
from data_server import DataServer, data_server

from benchmark.data import fetch
from benchmark.data.cards import CARDS, RemoteFile
from benchmark.errors import DatasetUnavailableError

ARCHIVE = "toy/toy.tar.gz"
PAYLOAD = os.urandom(300_000)  # incompressible: the archive is large enough to be caught midway


def toy_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("toy-data/payload.bin")
        info.size = len(PAYLOAD)
        tar.addfile(info, io.BytesIO(PAYLOAD))
    return buffer.getvalue()


def serve(server: DataServer, archive: bytes, monkeypatch: pytest.MonkeyPatch) -> str:
    """Serve the archive as a mirror of the data folder (ALB_DATA_MIRROR, inherited by the workers)."""
    server.files[ARCHIVE] = archive
    monkeypatch.setenv(fetch.MIRROR_ENV, server.url)
    return "http://unreachable.invalid/toy.tar.gz"  # the card's own URL: the mirror replaces it


def toy_file(url: str, archive: bytes) -> RemoteFile:
    return RemoteFile(ARCHIVE, url, f"sha256:{hashlib.sha256(archive).hexdigest()}", "test", "tar",
                      ("toy/toy-data/payload.bin",))


# a worker process: fetch the toy file, then read what it unpacked (its sha256 on stdout)
WORKER = """
import hashlib, sys
from pathlib import Path
from benchmark.data.cards import RemoteFile
from benchmark.data.fetch import ensure_file
url, data_dir, checksum = sys.argv[1:4]
file = RemoteFile("toy/toy.tar.gz", url, checksum, "test", "tar", ("toy/toy-data/payload.bin",))
ensure_file(file, Path(data_dir))
print(hashlib.sha256((Path(data_dir) / file.ready[0]).read_bytes()).hexdigest())
"""


def worker(url: str, data_dir: Path, file: RemoteFile) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", WORKER, url, str(data_dir), str(file.checksum)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_fetches_download_once_and_never_read_a_partial_file(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    archive = toy_archive()
    with data_server() as server:
        url = serve(server, archive, monkeypatch)
        server.delay = 0.5  # every process starts before the first download ends
        file = toy_file(url, archive)
        procs = [worker(url, tmp_path, file) for _ in range(4)]
        outputs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, outputs
        assert {out.strip() for out, _ in outputs} == {hashlib.sha256(PAYLOAD).hexdigest()}
        assert server.gets[ARCHIVE] == 1
    assert not list(tmp_path.rglob("*.part")) and not list((tmp_path / ".alb").glob("unpack.*"))
    assert fetch.file_state(file, tmp_path).verified == "sha256 verified"


def test_a_download_killed_midway_leaves_nothing_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = toy_archive()
    with data_server() as server:
        url = serve(server, archive, monkeypatch)
        server.stall.add(ARCHIVE)
        file = toy_file(url, archive)
        proc = worker(url, tmp_path, file)
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size for p in tmp_path.rglob("*.part")):
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        state = fetch.file_state(file, tmp_path)
        assert not state.present and not (tmp_path / ARCHIVE).exists()
        with pytest.raises(DatasetUnavailableError, match="missing"):
            fetch.ensure_file(file, tmp_path, allow_download=False)
        server.stall.clear()  # the next try gets the whole file; the dead process's lock is gone
        fetch.ensure_file(file, tmp_path)
        assert (tmp_path / file.ready[0]).read_bytes() == PAYLOAD
        assert server.gets[ARCHIVE] == 2
    assert not list(tmp_path.rglob("*.part"))


def test_truncated_transfer_and_damaged_file_are_never_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = toy_archive()
    with data_server() as server:
        file = toy_file(serve(server, archive, monkeypatch), archive)
        server.short.add(ARCHIVE)
        with pytest.raises(DatasetUnavailableError, match="could not be downloaded"):
            fetch.ensure_file(file, tmp_path)
        assert not (tmp_path / ARCHIVE).exists() and not (tmp_path / "toy" / "toy-data").exists()
    (tmp_path / ARCHIVE).write_bytes(archive[: len(archive) // 2])  # a truncated copy put there by hand
    with pytest.raises(DatasetUnavailableError, match="damaged or truncated: its sha256 is"):
        fetch.ensure_file(file, tmp_path)
    assert not (tmp_path / "toy" / "toy-data").exists()
    problems = fetch.dataset_problems("cifar10", tmp_path, allow_download=False)
    assert len(problems) == 1 and "cifar-10-python.tar.gz" in "\n".join(problems[0].lines())


def test_mirror_url_follows_the_data_folder_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    file = CARDS["mnist"].files[0]
    monkeypatch.setenv(fetch.MIRROR_ENV, "https://mirror.example/alb-data/")
    assert fetch.source_url(file) == "https://mirror.example/alb-data/MNIST/raw/train-images-idx3-ubyte.gz"
    monkeypatch.delenv(fetch.MIRROR_ENV)
    assert fetch.source_url(file) == file.url


def test_card_checksums_are_torchvision_s() -> None:
    import torchvision.datasets as tvd

    def md5(name: str) -> list[str | None]:
        return [f.checksum.removeprefix("md5:") if f.checksum else None for f in CARDS[name].files]

    assert md5("cifar10") == [tvd.CIFAR10.tgz_md5] and md5("cifar100") == [tvd.CIFAR100.tgz_md5]
    assert md5("stl10") == [tvd.STL10.tgz_md5]
    assert md5("mnist") == [m for _, m in tvd.MNIST.resources]
    assert md5("fashion_mnist") == [m for _, m in tvd.FashionMNIST.resources]
    assert md5("svhn") == [tvd.SVHN.split_list[s][2] for s in ("train", "test")]
    assert [f.url for f in CARDS["cifar10"].files] == [tvd.CIFAR10.url]
    assert md5("tiny_imagenet") == [None] and "no published checksum" in CARDS["tiny_imagenet"].files[0].checksum_source
