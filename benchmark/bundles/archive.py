"""Writing and safely opening the gzip tar of a bundle.

Opening refuses, before anything is written to disk, every member that is not a plain file or folder (links,
devices, fifos), names that are absolute or climb out with ``..``, duplicate names (a later member would
silently replace an earlier one), and archives past the size limits; extraction then goes through tarfile's
``data`` filter as a second line of defence.
"""

from __future__ import annotations

import gzip
import tarfile
import zlib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from benchmark.errors import BundleError

MAX_MEMBERS = 100_000  # a suite has at most 10,000 cells (suite.MAX_CELLS), plus the suite file and manifest
MAX_MEMBER_BYTES = 1 << 30  # one cell file of a long run is a few MB
MAX_TOTAL_BYTES = 8 << 30


def write_archive(out: Path, files: Mapping[str, bytes]) -> None:
    """A gzip tar of ``files`` (name in the archive -> content), in sorted order, with neutral owners."""
    import io

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(files):
                data = files[name]
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)


def _member_problem(member: tarfile.TarInfo) -> str | None:
    path = PurePosixPath(member.name)
    if not (member.isfile() or member.isdir()):
        return "is not a plain file or folder (a link, device or fifo)"
    if path.is_absolute() or member.name.startswith(("/", "\\")) or ".." in path.parts or "\\" in member.name:
        return "has an absolute path or climbs out with '..'"
    if member.size > MAX_MEMBER_BYTES:
        return f"is {member.size} bytes, over the limit of {MAX_MEMBER_BYTES}"
    return None


def _checked_members(tar: tarfile.TarFile, source: Path) -> list[tarfile.TarInfo]:
    members: list[tarfile.TarInfo] = []
    names: set[str] = set()
    total = 0
    for member in tar:
        if len(members) >= MAX_MEMBERS:
            raise BundleError(f"{source}: more than {MAX_MEMBERS} entries; not an alb bundle")
        problem = _member_problem(member)
        if problem:
            raise BundleError(f"{source}: entry '{member.name}' {problem}; alb refuses to open it")
        name = str(PurePosixPath(member.name))
        if name in names:
            raise BundleError(f"{source}: entry '{name}' appears twice; alb refuses to open it")
        names.add(name)
        total += member.size
        if total > MAX_TOTAL_BYTES:
            raise BundleError(f"{source}: over {MAX_TOTAL_BYTES} bytes unpacked; alb refuses to open it")
        members.append(member)
    return members


def extract_archive(source: Path, dest: Path) -> list[str]:
    """Unpack the bundle at ``source`` into ``dest`` (an empty folder); returns the names of its files.
    BundleError when ``source`` is not a readable gzip tar or holds anything unsafe."""
    if not source.is_file():
        raise BundleError(f"{source}: no such file; pass a bundle written by 'alb bundle'")
    try:
        with tarfile.open(source, "r:gz") as tar:
            members = _checked_members(tar, source)
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise BundleError(f"{source}: not a gzip tar archive ({type(exc).__name__}: {exc}); "
                          "pass a bundle written by 'alb bundle'") from None
    return sorted(str(PurePosixPath(m.name)) for m in members if m.isfile())


def read_tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by its path relative to it (for tests and repacking)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
