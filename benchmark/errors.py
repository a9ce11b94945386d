"""Errors that alb reports to the user as one clear message instead of a traceback."""

from __future__ import annotations


class AlbError(Exception):
    """Base class: the CLI prints the message and exits with status 2."""


class ConfigError(AlbError):
    """A suite file or a command-line value is invalid; the message says how to fix it."""


class DatasetUnavailableError(AlbError):
    """A dataset is not on disk and could not be downloaded."""


class NonFiniteLossError(AlbError):
    """Training produced a NaN or infinite loss; the cell is recorded as failed."""
