"""What the cells of a run read from the data directory, made ready before any cell is dispatched.

``alb run`` (every executor) calls :func:`require_inputs` on the pending cells: each registered dataset's files
and each ``init: imagenet`` weights file is checked, fetched (under a lock, see :mod:`benchmark.data.fetch`)
when missing, or listed in one :class:`DataMissingError`, so a machine without the data fails once, with
every missing file, its URL, its place and the ``alb data fetch`` command, instead of once per cell.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from benchmark.data.fetch import DataProblem, dataset_problems, problems_message
from benchmark.errors import DatasetUnavailableError
from benchmark.suite import Cell


class DataMissingError(DatasetUnavailableError):
    """Files a run needs are missing (and could not be fetched) or damaged; no cell was started."""


def needed(cells: Iterable[Cell]) -> tuple[list[str], list[str]]:
    """The dataset specs and the backbones with ``init: imagenet`` of ``cells``, in first-seen order."""
    datasets: dict[str, None] = {}
    backbones: dict[str, None] = {}
    for cell in cells:
        datasets[cell.config.dataset] = None
        if cell.config.init == "imagenet":
            backbones[cell.config.backbone] = None
    return list(datasets), list(backbones)


def input_problems(datasets: list[str], backbones: list[str], data_dir: Path,
                   allow_download: bool = True) -> list[DataProblem]:
    """Make the datasets' files and the backbones' ImageNet weights ready; the problems of those that are not."""
    from benchmark.data.weights import weights_problems

    problems = [p for name in datasets for p in dataset_problems(name, data_dir, allow_download)]
    return problems + [p for b in backbones for p in weights_problems(b, data_dir, allow_download)]


def require_inputs(cells: list[Cell], data_dir: Path, fetch_args: list[str]) -> None:
    """Every file the cells read from ``data_dir`` present and verified, or one DataMissingError."""
    problems = input_problems(*needed(cells), data_dir)
    if problems:
        raise DataMissingError(problems_message(problems, data_dir, fetch_args))
