"""Execution options (torch.compile) change the arithmetic path, never the recipe or the results' meaning."""

from __future__ import annotations

from pathlib import Path

import torch
from conftest import write_suite

from benchmark import cli
from benchmark.models.base import build_backbone
from benchmark.store import load_results
from benchmark.training.execution import Execution


def test_compiled_backbone_gives_the_eager_outputs_and_keeps_its_methods() -> None:
    torch.manual_seed(0)
    eager = build_backbone("small_cnn", 10, 1)
    compiled = build_backbone("small_cnn", 10, 1)
    compiled.load_state_dict(eager.state_dict())
    compiled = Execution("cpu", "fp32", False, compile=True).prepare_model(compiled)
    assert compiled._compiled_call_impl is not None  # nn.Module.compile ran (in place)
    x = torch.randn(8, 1, 8, 8)
    eager.eval()
    compiled.eval()
    assert torch.allclose(compiled(x), eager(x), atol=1e-5)
    logits, embedding = compiled.forward_with_embedding(x)  # the Backbone API is still there
    assert embedding.shape == (8, compiled.embedding_dim) and torch.allclose(logits, eager(x), atol=1e-5)


def test_run_with_compile_records_it(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, "comp", """\
        name: comp
        defaults:
          dataset: digits
          backbone: small_cnn
          strategy: entropy
          budget: {initial: 10, query: 10, rounds: 1}
          training: {epochs: 1, batch_size: 16}
        matrix:
          seed: [0]
        """)
    assert cli.main(["run", str(suite), "--results", str(tmp_path / "r"), "--compile", "--quiet"]) == 0
    frame = load_results(tmp_path / "r")
    assert len(frame) == 2 and set(frame["compiled"]) == {"true"}
