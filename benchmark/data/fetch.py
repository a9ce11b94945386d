"""Download, verify and unpack the files of the data cards into a data directory, safely for many processes.

Every file is handled under a lock of its own in ``<data-dir>/.alb/locks/`` (``filelock``: released by the
operating system when its holder dies), downloaded to ``<name>.<pid>.part`` and checked against its published
checksum before it is renamed into place, and unpacked into a temporary folder that is renamed into place:
so any number of workers, Ray tasks or Slurm tasks on one shared data directory download a file once, and
none ever sees a partial file under a real name. A verified file gets a small marker in
``<data-dir>/.alb/verified/`` (keyed by its size and modification time) so it is hashed once.

``ALB_DATA_MIRROR=URL`` replaces every card's URL by ``URL/<path in the data directory>``: a mirror is a data
directory served over HTTP (a cluster's own copy).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import uuid
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from benchmark.data.cards import CARDS, NOT_VERIFIED, RemoteFile
from benchmark.errors import DatasetUnavailableError
from benchmark.ops.locks import exclusive_lock

MIRROR_ENV = "ALB_DATA_MIRROR"
STATE_DIR = ".alb"
TIMEOUT_SECONDS = 30.0
CHUNK = 1 << 20


@dataclass(frozen=True)
class DataProblem:
    """A file a run needs that is missing (and could not be downloaded) or damaged."""

    what: str  # "dataset 'cifar10'" or "init 'imagenet' weights of resnet18_cifar"
    file: RemoteFile
    place: Path
    reason: str

    def lines(self) -> list[str]:
        check = f" ({self.file.checksum})" if self.file.checksum else ""
        return [f"- {self.what}: {self.place.name} {self.reason}",
                f"    Download {source_url(self.file)} and place it as {self.place}{check}"]


@dataclass(frozen=True)
class FileState:
    file: RemoteFile
    path: Path
    present: bool
    verified: str  # "md5 verified", "not verified: ...", "archive absent (unpacked copy, not verified)"
    size: int  # bytes on disk: the file and what it unpacked to


def source_url(file: RemoteFile) -> str:
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    return f"{mirror.rstrip('/')}/{file.path}" if mirror else file.url


# ---------------------------------------------------------------- checksums


def _digest(path: Path, algo: str) -> str:
    digest = hashlib.new(algo)
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _marker(data_dir: Path, file: RemoteFile) -> Path:
    return data_dir / STATE_DIR / "verified" / (file.path.replace("/", "__") + ".json")


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def check_file(path: Path, file: RemoteFile, data_dir: Path | None = None) -> str | None:
    """None when ``path`` matches the file's published checksum (or none is published), else what is wrong.
    With ``data_dir`` a match is remembered in a marker, so the next check of the same file costs a stat."""
    if file.checksum is None:
        return None
    algo, _, expected = file.checksum.partition(":")
    marker = _marker(data_dir, file) if data_dir is not None else None
    with contextlib.suppress(OSError, ValueError, KeyError):
        if marker is not None and json.loads(marker.read_text()) == {"stamp": _stamp(path), "checksum": file.checksum}:
            return None
    actual = _digest(path, algo)
    if not actual.startswith(expected):
        return (f"is damaged or truncated: its {algo} is {actual}, the published one {expected} "
                f"({path.stat().st_size:,} bytes on disk)")
    if marker is not None:
        with contextlib.suppress(OSError):
            marker.parent.mkdir(parents=True, exist_ok=True)
            tmp = marker.with_name(f"{marker.name}.{os.getpid()}.part")
            tmp.write_text(json.dumps({"stamp": _stamp(path), "checksum": file.checksum}))
            os.replace(tmp, marker)
    return None


# ---------------------------------------------------------------- download and unpack


def _progress(total: int | None, label: str):  # type: ignore[no-untyped-def]
    """A rich progress bar on a terminal, a plain line otherwise."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        print(f"alb: downloading {label}", file=sys.stderr, flush=True)
        return None
    progress = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                        TransferSpeedColumn(), console=console, transient=True)
    return progress, progress.add_task(label, total=total)


def download(url: str, dest: Path, file: RemoteFile) -> None:
    """Download ``url`` to ``dest`` (atomically, after the checksum matched); DatasetUnavailableError if not."""
    part = dest.with_name(f"{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response, part.open("wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            bar = _progress(total, f"{dest.name} <- {url}")
            received = 0
            with bar[0] if bar else contextlib.nullcontext():
                while block := response.read1(CHUNK):  # what has arrived: a stalled server shows as a .part
                    out.write(block)
                    received += len(block)
                    if bar:
                        bar[0].update(bar[1], completed=received)
            if total is not None and received != total:
                raise DatasetUnavailableError(f"the transfer ended after {received:,} of {total:,} bytes")
        problem = check_file(part, file)
        if problem is not None:
            raise DatasetUnavailableError(f"the downloaded file {problem.removeprefix('is ')}")
        os.replace(part, dest)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DatasetUnavailableError(f"is missing and could not be downloaded ({type(exc).__name__}: "
                                      f"{reason})") from None
    except DatasetUnavailableError as exc:
        raise DatasetUnavailableError(f"could not be downloaded: {exc}") from None
    finally:
        part.unlink(missing_ok=True)


def _extract(archive: Path, kind: str, into: Path) -> None:
    if kind == "tar":
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
    elif kind == "zip":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(into)
    elif kind == "gunzip":
        with gzip.open(archive, "rb") as src, (into / archive.name.removesuffix(".gz")).open("wb") as out:
            shutil.copyfileobj(src, out, CHUNK)
    elif kind == "zip+tgz":  # Caltech-101: a zip holding 101_ObjectCategories.tar.gz (and annotations)
        inner = into / ".zip"
        _extract(archive, "zip", inner)
        for tgz in sorted(inner.rglob("*.tar.gz")):
            # a zip made on macOS holds '__MACOSX/**/._NAME' resource forks named like the archives: not tars
            if tgz.name.startswith("._") or "__MACOSX" in tgz.relative_to(inner).parts:
                continue
            _extract(tgz, "tar", into)
        shutil.rmtree(inner)
    else:
        raise ValueError(f"unknown archive kind {kind}")


def unpack(file: RemoteFile, data_dir: Path) -> None:
    """Unpack the (verified) archive into a temporary folder, then rename each top-level entry into place
    (an old incomplete copy is moved aside first)."""
    archive = data_dir / file.path
    assert file.extract is not None
    target_dir = archive.parent
    tmp = data_dir / STATE_DIR / f"unpack.{os.getpid()}.{uuid.uuid4().hex[:6]}"
    tmp.mkdir(parents=True)
    try:
        try:
            _extract(archive, file.extract, tmp)
        # zlib.error: a damaged deflate stream in a zip (Tiny ImageNet's has no published checksum to catch it)
        except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            raise DatasetUnavailableError(f"is damaged or truncated: unpacking it failed ({type(exc).__name__}: "
                                          f"{exc}); delete it and fetch it again") from None
        for entry in sorted(tmp.iterdir()):
            final = target_dir / entry.name
            if final.exists():
                trash = data_dir / STATE_DIR / f"trash.{os.getpid()}.{uuid.uuid4().hex[:6]}"
                os.replace(final, trash)
                shutil.rmtree(trash, ignore_errors=True) if trash.is_dir() else trash.unlink(missing_ok=True)
            os.replace(entry, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- one file, one dataset


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return 0


def _unpacked_roots(file: RemoteFile, data_dir: Path) -> set[Path]:
    """The top-level entries the file unpacked to, beside the archive (for sizes on disk)."""
    parent = (data_dir / file.path).parent
    return {parent / (data_dir / t).relative_to(parent).parts[0] for t in file.ready}


def file_state(file: RemoteFile, data_dir: Path, hash_now: bool = False) -> FileState:
    """What is on disk for ``file`` (no download, no lock); ``hash_now`` verifies an unverified archive."""
    path = data_dir / file.path
    ready = all((data_dir / t).exists() for t in file.targets)
    size = _size(path) + sum(_size(p) for p in _unpacked_roots(file, data_dir))
    if not path.is_file():
        return FileState(file, path, ready, "archive absent (unpacked copy, not verified)" if ready else "", size)
    if file.checksum is None:
        return FileState(file, path, ready, NOT_VERIFIED, size)
    algo = file.checksum.partition(":")[0]
    marker = _marker(data_dir, file)
    with contextlib.suppress(OSError, ValueError, KeyError):
        if json.loads(marker.read_text()) == {"stamp": _stamp(path), "checksum": file.checksum}:
            return FileState(file, path, ready, f"{algo} verified", size)
    if not hash_now:
        return FileState(file, path, ready, "not checked yet", size)
    problem = check_file(path, file, data_dir)
    return FileState(file, path, ready, f"{algo} verified" if problem is None else f"DAMAGED: {problem}", size)


def ensure_file(file: RemoteFile, data_dir: Path, allow_download: bool = True) -> Path:
    """Make ``file`` present, verified and unpacked in ``data_dir``; DatasetUnavailableError (its message is a
    reason, see :class:`DataProblem`) when it is missing and cannot be downloaded, or is damaged."""
    path = data_dir / file.path
    state = file_state(file, data_dir)
    if state.present and state.verified != "not checked yet":
        return path  # the fast path: no lock, no hashing
    with exclusive_lock(data_dir / STATE_DIR / "locks" / (file.path.replace("/", "__") + ".lock")):
        for stale in path.parent.glob(f"{path.name}.*.part") if path.parent.is_dir() else ():
            stale.unlink(missing_ok=True)  # a killed download's leftovers: we hold the lock, nobody writes them
        state = file_state(file, data_dir)  # another process may have finished it while we waited
        if state.present and state.verified != "not checked yet":
            return path
        if path.is_file():
            problem = check_file(path, file, data_dir)
            if problem is not None:
                raise DatasetUnavailableError(f"{problem}; delete it and fetch it again")
        elif not allow_download:
            raise DatasetUnavailableError("is missing (downloads are off)")
        else:
            download(source_url(file), path, file)
            check_file(path, file, data_dir)  # remember the match: the next check costs a stat
        if file.extract is not None and not all((data_dir / t).exists() for t in file.targets):
            unpack(file, data_dir)
            missing = [t for t in file.targets if not (data_dir / t).exists()]
            if missing:
                raise DatasetUnavailableError(f"does not hold {', '.join(missing)} once unpacked: it is not "
                                              "the expected archive; delete it and fetch it again")
    return path


def dataset_problems(name: str, data_dir: Path, allow_download: bool = True) -> list[DataProblem]:
    """Make every file of dataset ``name`` ready; the problems of those that could not be (empty: all ready).
    A dataset without a card (a plugin's, a path spec) has nothing to fetch."""
    card = CARDS.get(name)
    problems = []
    for file in card.files if card else ():
        try:
            ensure_file(file, data_dir, allow_download)
        except DatasetUnavailableError as exc:
            problems.append(DataProblem(f"dataset '{name}'", file, data_dir / file.path, str(exc)))
    return problems


def ensure_dataset(name: str, data_dir: Path) -> None:
    """For a loader: the dataset's files ready in ``data_dir``, or one DatasetUnavailableError naming them."""
    problems = dataset_problems(name, data_dir)
    if problems:
        raise DatasetUnavailableError(problems_message(problems, data_dir, [name], ""))


def problems_message(problems: list[DataProblem], data_dir: Path, fetch_args: list[str],
                     consequence: str = "; nothing was started") -> str:
    lines = [f"{len(problems)} file(s) needed in {data_dir} are missing or damaged{consequence}:"]
    for problem in problems:
        lines += problem.lines()
    lines.append(f"Fetch them where the internet is reachable with `alb data fetch {' '.join(fetch_args)} "
                 f"--data-dir DIR` and copy DIR here (or point --data-dir / ALB_DATA at it), or set "
                 f"{MIRROR_ENV} to a mirror of the data folder.")
    return "\n".join(lines)
