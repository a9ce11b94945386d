"""Errors of self-supervised pre-training and of loading initial weights."""

from __future__ import annotations

from benchmark.errors import AlbError, ConfigError


class CheckpointError(ConfigError):
    """``init: checkpoint:PATH`` names a file that is missing, unreadable or made for another network."""


class PretrainCacheError(AlbError):
    """A cached pre-training result on disk cannot be read."""
