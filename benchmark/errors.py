"""Errors that alb reports to the user as one clear message instead of a traceback."""

from __future__ import annotations

import os
import re

# control characters (C0 but newline and tab, DEL, C1), bidirectional embeddings, overrides and isolates, zero-width
# characters, line / paragraph separators and the BOM: in a terminal they move the cursor, recolour, or reorder what
# follows ("Trojan source"), so a user's string may not print them raw
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
                     "\u2060-\u2069\ufeff]")


def escape_unsafe(text: str, newlines: bool = True) -> str:
    """``text`` with every unsafe character written as its escape (\\x1b, \\u202e); newlines kept unless
    ``newlines`` is False (a user's string in a one-line message)."""
    escaped = _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    return escaped if newlines else escaped.replace("\n", "\\n").replace("\t", "\\t")


class AlbError(Exception):
    """Base class: the CLI prints the message and exits with status 2."""


class ConfigError(AlbError):
    """A suite file or a command-line value is invalid; the message says how to fix it."""


class DatasetUnavailableError(AlbError):
    """A dataset is not on disk and could not be downloaded."""


class NonFiniteLossError(AlbError):
    """Training produced a NaN or infinite loss; the cell is recorded as failed."""


class ResultsLayoutError(AlbError):
    """A path in a results folder has the wrong kind (a file where a folder belongs, or the reverse)."""


class NotRegularFileError(ResultsLayoutError):
    """A path alb reads or appends to is a FIFO, a device, a socket or a folder: never opened, so never blocks."""

    def __init__(self, path: str | os.PathLike[str], kind: str, st: os.stat_result | None = None) -> None:
        super().__init__(f"{path} is {kind}, not a regular file; move it away")
        self.path, self.kind, self.st = path, kind, st


class AlbWarning(UserWarning):
    """A warning the CLI prints as one line, ``alb: warning: ...``."""


class DamagedFileWarning(AlbWarning):
    """A result or checkpoint file was unusable and moved to quarantine, or a stray file was ignored."""


class ClaimWarning(AlbWarning):
    """A claim file was not a valid claim (or its heartbeat lay in the future) and was treated as stale."""


class BundleError(AlbError):
    """A file given as a submission bundle is not one (not a gzip tar, no valid manifest, unsafe members),
    or a bundle cannot be written (unfinished cells without --allow-partial)."""
