"""Shared fixtures: tiny real suites on the embedded digits data."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def write_suite(directory: Path, name: str, body: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(textwrap.dedent(body))
    return path


TINY_SUITE = """\
name: tiny
defaults:
  dataset: digits
  backbone: small_cnn
  budget: {initial: 10, query: 10, rounds: 2}
  training: {epochs: 2, batch_size: 16, optimizer: {name: sgd, lr: 0.05}}
matrix:
  strategy: [random, entropy]
  seed: [0, 1]
"""


@pytest.fixture(autouse=True)
def cells_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """`alb run` without --workers runs the cells in the calling process (as on a GPU), so tests can observe
    and patch the trainer; tests of local workers pass --workers or unset this."""
    monkeypatch.setenv("ALB_WORKERS", "1")


@pytest.fixture(autouse=True)
def no_data_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Datasets come from a mirror on a closed local port: a test that does not provide its files fails at once
    instead of reaching for the internet (tests that serve files set ALB_DATA_MIRROR themselves)."""
    monkeypatch.setenv("ALB_DATA_MIRROR", "http://127.0.0.1:9")


@pytest.fixture
def count_training(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[int]]:
    """Call it to start counting: the returned list grows by one each time the trainer really trains."""
    def start() -> list[int]:
        import benchmark.training.trainer as trainer

        calls: list[int] = []
        real_train = trainer.train

        def counting_train(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            return real_train(*args, **kwargs)

        monkeypatch.setattr(trainer, "train", counting_train)
        return calls

    return start


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_suite(tmp_path: Path) -> Path:
    """4 cells x 3 rounds x 2 epochs: a real AL run in about a second in-process."""
    return write_suite(tmp_path, "tiny", TINY_SUITE)


def alb_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "benchmark.cli", *args]


def alb_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    # several alb processes share 2 cores in these tests: oversubscribed torch threads crawl
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_alb(*args: str, cwd: Path = REPO, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(alb_command(*args), cwd=cwd, env=alb_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)


def assert_valid_selection(picked: Any, unlabeled: Any, labeled: Any, budget: int) -> None:
    """A strategy's answer: int64 pool indices, exactly min(budget, pool), distinct, all unlabeled."""
    import numpy as np

    assert picked.ndim == 1 and picked.dtype == np.int64
    assert len(picked) == min(budget, len(unlabeled))
    assert len(np.unique(picked)) == len(picked), "duplicates"
    assert set(picked.tolist()) <= set(unlabeled.tolist()), "not from the unlabeled pool"
    assert not set(picked.tolist()) & set(labeled.tolist()), "picked a labeled sample"


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny networks and graphs: thread start-up dominates, and oversubscribed threads crawl on 2 cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def finishes_within(seconds: float, call: Callable[[], Any], folders: Sequence[Path]) -> Any:
    """``call()`` in a thread; fails the test when it has not returned after ``seconds`` (a hang on a FIFO),
    after unblocking it: every FIFO under ``folders`` gets a reader and a writer, so the thread can end."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        fifos = [p for f in folders for p in Path(f).rglob("*") if p.is_fifo()]
        for fifo in fifos:
            for flags in (os.O_RDONLY | os.O_NONBLOCK, os.O_WRONLY | os.O_NONBLOCK):
                with contextlib.suppress(OSError):
                    os.close(os.open(fifo, flags))
        pytest.fail(f"still running after {seconds} s (blocked on one of the FIFOs {fifos}?)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
