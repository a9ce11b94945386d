"""The ``init: imagenet`` weights files a run needs, placed in ``<data-dir>/weights/`` where
:mod:`benchmark.models.imagenet` looks first.

torchvision's ResNet files are fetched like dataset files (lock, atomic rename, sha256 prefix published in
their names); timm's and DINOv2's files come from the Hugging Face Hub through ``huggingface_hub`` into a
temporary folder, then renamed into place. A copy already in the library's cache counts as present.
Torch-free.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from benchmark.data.cards import HUB_WEIGHTS, NOT_VERIFIED, WEIGHTS, RemoteFile
from benchmark.data.fetch import STATE_DIR, DataProblem, ensure_file
from benchmark.errors import DatasetUnavailableError
from benchmark.ops.locks import exclusive_lock


def local_copy(data_dir: Path, backbone: str) -> Path | None:
    """The copy ``benchmark.models.imagenet.local_weights`` would use (same names), if there is one."""
    weights_dir = data_dir / "weights"
    if backbone == "dinov2_small":
        folder = weights_dir / f"{backbone}-imagenet"
        return folder if (folder / "model.safetensors").is_file() else None
    for suffix in (".pth", ".safetensors"):
        if (path := weights_dir / f"{backbone}-imagenet{suffix}").is_file():
            return path
    return None


def _torch_hub_copy(file: RemoteFile) -> Path | None:
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch")
    path = Path(home) / "hub" / "checkpoints" / file.url.rsplit("/", 1)[-1]
    return path if path.is_file() else None


def _hub_cached(repo: str, files: tuple[str, ...]) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return all(isinstance(try_to_load_from_cache(repo, name), str) for name in files)


def hub_remote(backbone: str) -> RemoteFile:
    """A hub weights file as a card entry (for messages and listings)."""
    repo, files = HUB_WEIGHTS[backbone]
    place = f"weights/{backbone}-imagenet" + ("" if backbone == "dinov2_small" else ".safetensors")
    return RemoteFile(place, " and ".join(f"https://huggingface.co/{repo}/resolve/main/{f}" for f in files),
                      None, NOT_VERIFIED)


def _fetch_from_hub(backbone: str, data_dir: Path) -> None:
    from huggingface_hub import hf_hub_download

    repo, files = HUB_WEIGHTS[backbone]
    remote = hub_remote(backbone)
    with exclusive_lock(data_dir / STATE_DIR / "locks" / f"weights__{backbone}.lock"):
        if local_copy(data_dir, backbone) is not None:
            return
        tmp = data_dir / STATE_DIR / f"hub.{os.getpid()}.{uuid.uuid4().hex[:6]}"
        try:
            for name in files:
                hf_hub_download(repo, name, local_dir=tmp)
            final = data_dir / remote.path
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp if backbone == "dinov2_small" else tmp / files[0], final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def weights_problems(backbone: str, data_dir: Path, allow_download: bool = True) -> list[DataProblem]:
    """Make ``backbone``'s ImageNet weights present; the problem when they cannot be (empty: present)."""
    what = f"init 'imagenet' weights of backbone '{backbone}'"
    if backbone in WEIGHTS:
        file = WEIGHTS[backbone]
        if _torch_hub_copy(file) is not None or (local_copy(data_dir, backbone) not in (None, data_dir / file.path)):
            return []
        try:
            ensure_file(file, data_dir, allow_download)
            return []
        except DatasetUnavailableError as exc:
            return [DataProblem(what, file, data_dir / file.path, str(exc))]
    if backbone in HUB_WEIGHTS:
        if local_copy(data_dir, backbone) is not None or _hub_cached(*HUB_WEIGHTS[backbone]):
            return []
        remote = hub_remote(backbone)
        if not allow_download:
            return [DataProblem(what, remote, data_dir / remote.path, "is missing (downloads are off)")]
        try:
            _fetch_from_hub(backbone, data_dir)
            return []
        except Exception as exc:  # the hub client raises many kinds (OSError, HTTP, offline mode) when offline
            reason = str(exc).splitlines()[0] if str(exc) else ""
            return [DataProblem(what, remote, data_dir / remote.path,
                                f"is missing and could not be downloaded ({type(exc).__name__}: {reason})")]
    return []
