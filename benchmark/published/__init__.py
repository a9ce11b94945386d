"""Numbers transcribed from the five source papers, one entry per printed number.

Each ``seedNNN.yaml`` file holds the paper's identity and a list of entries.
Names use alb's vocabulary (registry names, dotted suite keys) so that
``alb check`` and ``alb report`` can put a published number beside ours; where
the paper uses a method, backbone or setting alb does not implement, the entry
uses a descriptive name and is reported as "not comparable".
An entry's ``kind`` says whose number it is: the paper's own measurement, a number
it quotes from other papers (seed 001 Table 3: start-mid-end accuracy ranges,
metric ``accuracy_range``, never compared), or its full-training upper bound.
"""

from __future__ import annotations

import fnmatch
import functools
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from benchmark.errors import ConfigError
from benchmark.registry import did_you_mean

PUBLISHED_DIR = Path(__file__).parent
Scalar = str | int | float | bool


class PublishedNumber(BaseModel):
    """One number as printed in a paper, with the protocol it was measured under."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="unique over all files")
    table: str = Field(description="the table's name as printed, e.g. 'Table 2: Results on the full data'")
    table_id: str = Field(pattern=r"^seed00[0-4]/[a-z0-9_.-]+$", description="e.g. seed001/table2")
    dataset: str
    backbone: str
    strategy: str = Field(description="alb strategy name; 'full' for training on the whole labeled pool")
    setting: dict[str, Scalar] = Field(default_factory=dict,
                                       description="protocol as dotted alb suite keys")
    n_labeled: int | None = Field(None, ge=0, description="labels at this number; null = final round")
    metric: Literal["accuracy", "accuracy_range", "map", "time_saved_hours", "seconds", "annotation_hours"]
    unit: Literal["percent", "fraction", "hours", "seconds"]
    kind: Literal["measured", "reported_by_others", "full_training"] = Field(
        "measured", description="measured: the paper's own result under 'setting'; reported_by_others: a number "
        "the paper quotes from other papers (protocols not given, never compared); full_training: the paper's "
        "accuracy of training on the whole labeled set, an upper bound for its AL curves")
    mean: float | None = Field(None, description="the value; null only for metric accuracy_range")
    start_mid_end: tuple[float, float, float] | None = Field(
        None, description="metric accuracy_range only: accuracies at the start, middle and end of an AL run, "
        "printed 'start-mid-end' (seed 001 Table 3)")
    std: float | None = Field(None, ge=0)
    runs: int | None = Field(None, gt=0)
    printed: str = Field(description="the cell's text exactly as it appears in the source file")
    note: str = ""

    @model_validator(mode="after")
    def _final_needs_note(self) -> PublishedNumber:
        if self.n_labeled is None and not self.note:
            raise ValueError(f"{self.id}: n_labeled is null (final round); say in 'note' why")
        return self

    @model_validator(mode="after")
    def _range_or_point(self) -> PublishedNumber:
        """accuracy_range has start_mid_end and no mean / std / runs; every other metric has a mean."""
        if self.metric == "accuracy_range":
            if self.start_mid_end is None or self.mean is not None or self.std is not None or self.runs is not None:
                raise ValueError(f"{self.id}: metric accuracy_range needs start_mid_end and no mean, std or runs")
        elif self.mean is None or self.start_mid_end is not None:
            raise ValueError(f"{self.id}: metric {self.metric} needs a mean and no start_mid_end")
        if self.kind == "reported_by_others" and self.metric != "accuracy_range":
            raise ValueError(f"{self.id}: kind reported_by_others is only used with metric accuracy_range")
        return self

    def as_fraction(self) -> float | None:
        """The value as a fraction; None for a range (not a point value)."""
        if self.mean is None:
            return None
        return self.mean / 100.0 if self.unit == "percent" else self.mean

    def std_fraction(self) -> float | None:
        if self.std is None:
            return None
        return self.std / 100.0 if self.unit == "percent" else self.std


class PaperInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern=r"^seed00[0-4]$")
    title: str
    source_file: str = Field(description="file name under shared/seeds/")
    readings: list[str] = Field(default_factory=list,
                                description="how ambiguous extracted text was read, and why")


class PublishedFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    paper: PaperInfo
    entries: list[PublishedNumber]


@functools.lru_cache(maxsize=1)
def load_published(directory: Path = PUBLISHED_DIR) -> tuple[PublishedFile, ...]:
    files = []
    for path in sorted(directory.glob("seed*.yaml")):
        files.append(PublishedFile.model_validate(yaml.safe_load(path.read_text())))
    return tuple(files)


def all_numbers() -> list[PublishedNumber]:
    return [entry for f in load_published() for entry in f.entries]


def resolve_references(patterns: list[str]) -> list[PublishedNumber]:
    """Entries named by id, table id (``seed001/table2``) or glob over either."""
    numbers = all_numbers()
    chosen: dict[str, PublishedNumber] = {}
    for pattern in patterns:
        hits = [n for n in numbers
                if fnmatch.fnmatchcase(n.id, pattern) or fnmatch.fnmatchcase(n.table_id, pattern)]
        if not hits:
            names = sorted({n.table_id for n in numbers} | {n.id for n in numbers})
            raise ConfigError(f"reference '{pattern}' matches no published number. Use an entry id, a table "
                              f"id such as {', '.join(sorted({n.table_id for n in numbers})[:6])} ..., "
                              f"or a glob.{did_you_mean(pattern, names)}")
        for hit in hits:
            chosen.setdefault(hit.id, hit)
    return list(chosen.values())
