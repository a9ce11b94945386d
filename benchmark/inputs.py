"""Content digests of the inputs a cell reads by path: ``dataset: npz:PATH``, ``dataset: image_folder:PATH[:SIZE]``,
``dataset: hf:NAME`` (its converted arrays) and ``init: checkpoint:PATH``.

A path names a place, not data: the file behind it can be rewritten, and a relative path means another file
when alb runs from another directory. So the sha256 of what the path holds enters the cell id
(:meth:`benchmark.config.CellConfig.cell_id`) and every result row (``input.dataset``, ``input.init``): new
data never gets old results. Hashing is paid once per content: a digest is cached by the input's signature
(resolved path, size and modification time of the file, or of every listed image of a folder) in this
process and in ``$ALB_CACHE_DIR`` (default ``$XDG_CACHE_HOME/alb``, else ``~/.cache/alb``) across processes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.columns import INPUT_PREFIX as INPUT_PREFIX  # result columns: input.dataset, input.init
from benchmark.digests import cached, file_digest, file_sha256, stat_regular, stat_signature
from benchmark.errors import ConfigError

if TYPE_CHECKING:
    from benchmark.config import CellConfig

# image folder -> digest, this process: listing and stat-ing every image per cell id would cost cells x images;
# a process reads a folder's images once anyway, so it goes by what the folder held when first asked
_folders: dict[tuple[str, str], str] = {}


def folder_digest(spec: str, path: Path) -> str:
    """sha256 over an image folder's listed images: split, class, file name and the sha256 of each file."""
    from benchmark.data import image_folder_listing

    resolved = path.expanduser().resolve()
    if (spec, str(resolved)) in _folders:
        return _folders[spec, str(resolved)]
    classes, train, test = image_folder_listing(spec, resolved)
    files = [(split, name, file) for split, per_class in (("train", train), ("test", test))
             for name, group in zip(classes, per_class, strict=True) for file in group]
    stats = [stat_regular(file, f"dataset '{spec}'") for _, _, file in files]
    signature = "folder\0" + "\n".join(f"{split}/{name}/{file.name}\0{stat_signature(file, st)}"
                                       for (split, name, file), st in zip(files, stats, strict=True))

    def compute() -> str:
        digest = hashlib.sha256()
        for (split, name, file), st in zip(files, stats, strict=True):
            one = cached("file\0" + stat_signature(file, st), lambda file=file: file_sha256(file))
            digest.update(f"{split}/{name}/{file.name}\0{one}\n".encode())
        return digest.hexdigest()

    digest = _folders[spec, str(resolved)] = cached(signature, compute)
    return digest


def dataset_digest(spec: str) -> str | None:
    """The content digest of a dataset given by path, None for a registered dataset (its version covers it)."""
    from benchmark.data import parse_spec

    parametric = parse_spec(spec)
    if parametric is None:
        return None
    if parametric.kind == "npz":
        return file_digest(parametric.path, f"dataset '{spec}'")
    if parametric.kind == "hf":  # the converted arrays: what the cells read, whatever the source
        from benchmark.data import hf

        return hf.digest(spec)
    if parametric.kind == "coco_json":
        assert parametric.annotations is not None
        return coco_json_digest(spec, parametric.path, parametric.annotations)
    return folder_digest(spec, parametric.path)


def coco_json_digest(spec: str, images: Path, annotations: Path) -> str:
    """sha256 over a COCO-format set: its annotations file (boxes, classes, file names) and every image it lists
    (an image rewritten under the same name is new data too). Per process like an image folder."""
    what = f"dataset '{spec}'"
    images, annotations = images.expanduser().resolve(), annotations.expanduser().resolve()
    key = (spec, f"{images}\0{annotations}")
    if key in _folders:
        return _folders[key]
    digest = hashlib.sha256(file_digest(annotations, what).encode())
    try:
        listed = json.loads(annotations.read_text())["images"]
        names = sorted({str(image["file_name"]) for image in listed})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{what}: {annotations} is not a COCO annotations file with 'images' "
                          f"({type(exc).__name__}: {exc})") from None
    for name in names:
        digest.update(f"{name}\0{file_digest(images / name, what)}\n".encode())
    _folders[key] = digest.hexdigest()
    return _folders[key]


def checkpoint_path(init: str) -> Path | None:
    """The file of ``init: checkpoint:PATH``, None for any other init."""
    return Path(init.removeprefix("checkpoint:").strip()).expanduser() if init.startswith("checkpoint:") else None


def input_digests(config: CellConfig | dict[str, Any]) -> dict[str, str]:
    """{'dataset': sha256, 'init': sha256} for the inputs of ``config`` given by path (empty when none is)."""
    c = config if isinstance(config, dict) else {"dataset": config.dataset, "init": config.init}
    digests: dict[str, str] = {}
    if isinstance(c.get("dataset"), str) and (digest := dataset_digest(c["dataset"])) is not None:
        digests["dataset"] = digest
    init = c.get("init")
    if isinstance(init, str) and (path := checkpoint_path(init)) is not None:
        digests["init"] = file_digest(path, f"init '{init}'")
    return digests


def input_columns(config: CellConfig | dict[str, Any]) -> dict[str, str]:
    """``input_digests`` as result columns: {'input.dataset': 'sha256:...', ...}."""
    return {f"{INPUT_PREFIX}{k}": f"sha256:{v}" for k, v in input_digests(config).items()}
