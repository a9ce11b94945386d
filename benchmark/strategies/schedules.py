"""Seed 000's hybrid schedules as strategies (definitions in ``SCHEDULES``)."""

from __future__ import annotations

from benchmark.strategies import SCHEDULES
from benchmark.strategies.base import Schedule


def _schedule(name: str) -> type[Schedule]:
    initial, rounds, what = SCHEDULES[name]
    return type(name.upper(), (Schedule,), {"name": name, "initial": initial, "rounds": rounds,
                                            "__doc__": what})


HCLC = _schedule("hclc")
LCHC = _schedule("lchc")
RHC = _schedule("rhc")
RLC = _schedule("rlc")
