"""The ``view`` settings of a cell (a modified training pool), shared by benchmark.config and
benchmark.data.views without either importing the other."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from benchmark.strict_model import StrictModel

# the pool a view builds is held in memory, images included: seed 001's largest is 6000 x 20 = 120,000 images;
# 1,000,000 CIFAR-sized images already take 3 GiB, and unique x copies unbounded would ask for any amount
MAX_VIEW_POOL = 1_000_000


class RedundancyConfig(StrictModel):
    unique: int = Field(gt=0, description="number of distinct training images kept (seed 001 A.15: 6000)")
    copies: int = Field(gt=1, description="how many times each of them appears in the pool (2 or 20); "
                        f"unique x copies is at most {MAX_VIEW_POOL}")

    @model_validator(mode="after")
    def _bounded_pool(self) -> RedundancyConfig:
        if self.unique * self.copies > MAX_VIEW_POOL:
            raise ValueError(f"unique x copies = {self.unique} x {self.copies} images, more than the "
                             f"{MAX_VIEW_POOL} a view's pool may have (it is built in memory); lower copies or unique")
        return self


class ViewConfig(StrictModel):
    """A modified training pool; the test split is never changed."""

    imbalance: float | list[int] | None = Field(
        None, description="class imbalance (seed 000): a ratio >= 1 between the largest and the smallest class, "
        "with class sizes decreasing linearly with the class index (ratio 10 on CIFAR-10: 5000, 4500, ..., 500; "
        "alb's profile: seed 000 does not give its script's class sizes), or explicit per-class counts")
    redundancy: RedundancyConfig | None = Field(
        None, description="seed 001 A.15: 'unique' random images, each repeated 'copies' times")

    @field_validator("imbalance")
    @classmethod
    def _imbalance(cls, v: float | list[int] | None) -> float | list[int] | None:
        if isinstance(v, list) and (not v or any(c < 0 for c in v) or sum(v) == 0):
            raise ValueError(f"per-class counts must be non-negative with a positive sum, got {v}")
        if isinstance(v, float | int) and not isinstance(v, list) and v < 1:
            raise ValueError(f"an imbalance ratio must be >= 1 (largest / smallest class), got {v}")
        return v
