"""Content digests of files, cached by the file's signature (resolved path, size, modification time, inode).

A leaf module (no benchmark.data import): :mod:`benchmark.inputs` digests the inputs of cells given by path
through it, and the loaders (benchmark/data/hf.py) the arrays they convert. A digest is computed once per
content, remembered in this process and in ``$ALB_CACHE_DIR`` (default ``$XDG_CACHE_HOME/alb``, else
``~/.cache/alb``) across processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

from benchmark.errors import ConfigError

CHUNK = 1 << 20
_memory: dict[str, str] = {}  # signature -> digest, this process


def alb_cache_root() -> Path:
    """alb's per-user cache: $ALB_CACHE_DIR, else $XDG_CACHE_HOME/alb, else ~/.cache/alb."""
    base = os.environ.get("ALB_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "alb")
    return Path(base)


def cache_dir() -> Path:
    """Where the digests are remembered across processes."""
    return alb_cache_root() / "input_digests"


def stat_regular(path: Path, what: str) -> os.stat_result:
    """The stat of a regular file (never opened otherwise: a FIFO would block), or a ConfigError saying why not."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{what}: {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{what}: {path} cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{what}: {path} is not a regular file")
    return st


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def cached(signature: str, compute: Callable[[], str]) -> str:
    """The digest of the content whose signature is ``signature``: from this process, the on-disk cache, or
    ``compute()`` (then remembered in both; an unwritable cache folder only costs the next process a rehash)."""
    if signature in _memory:
        return _memory[signature]
    key = hashlib.sha256(signature.encode()).hexdigest()
    entry = cache_dir() / f"{key}.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        if entry.is_file() and entry.stat().st_size < 4096:
            saved = json.loads(entry.read_text())
            if saved["signature"] == signature and isinstance(saved["sha256"], str) and len(saved["sha256"]) == 64:
                _memory[signature] = saved["sha256"]
                return saved["sha256"]
    digest: str = compute()
    _memory[signature] = digest
    with contextlib.suppress(OSError):
        from benchmark.files import atomic_write

        entry.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"signature": signature, "sha256": digest})
        atomic_write(entry, lambda tmp: tmp.write_text(text))
    return digest


def stat_signature(path: Path, st: os.stat_result) -> str:
    return f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}"


def file_digest(path: Path, what: str) -> str:
    """sha256 of a regular file's bytes (``what`` names the input in errors, e.g. "init 'checkpoint:x.pt'")."""
    resolved = path.expanduser().resolve()
    st = stat_regular(resolved, what)
    return cached("file\0" + stat_signature(resolved, st), lambda: file_sha256(resolved))
