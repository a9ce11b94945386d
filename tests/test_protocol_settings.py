"""Every setting of issue 5 runs as a real cell through `alb run` on the embedded digits data."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from conftest import write_suite

from benchmark import cli
from benchmark.errors import ConfigError
from benchmark.store import load_results
from benchmark.suite import load_suite

HEAD = """\
name: {name}
defaults:
  dataset: digits
  backbone: small_cnn
  strategy: entropy
  budget: {{initial: 20, query: 20, rounds: 1}}
  pretraining: {{epochs: 2, batch_size: 64}}
  training: {{epochs: 2, batch_size: 16}}
"""


def _run(tmp_path: Path, name: str, body: str) -> tuple[Path, object]:
    suite = write_suite(tmp_path, name, HEAD.format(name=name) + body)
    results = tmp_path / "results"
    assert cli.main(["run", str(suite), "--results", str(results), "--quiet", "--threads", "1"]) == 0
    return results, load_results(results / name)


def test_self_supervised_inits_with_frozen_heads_and_label_propagation(tmp_path: Path) -> None:
    results, frame = _run(tmp_path, "ssl", """\
include:
  - {init: rotation, training: {head: linear}}
  - {init: simsiam, training: {head: svm}, strategy: svm_min_margin}
  - {init: deepcluster, training: {semi: label_propagation, semi_k: 10, batch_size: 32}}
  - {init: scratch, training: {semi: label_propagation, semi_k: 10, batch_size: 32}}
""")
    assert len(frame) == 4 * 2
    assert set(frame["init"]) == {"rotation", "simsiam", "deepcluster", "scratch"}
    assert set(frame["training.head"]) == {"full", "linear", "svm"}
    assert frame["accuracy"].between(0, 1).all()
    # one cached pre-training per method (seed 0), each with its sidecar of losses
    cached = sorted(p.suffix for p in (results / "_pretrained").iterdir() if p.suffix in (".pt", ".json"))
    assert cached == [".json"] * 3 + [".pt"] * 3


def test_pretraining_is_cached_across_cells_and_reused_as_a_checkpoint(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmark.pretrain.initial as initial

    calls: list[str] = []
    real = initial._pretrain

    def counting(method: str, *args: object, **kwargs: object) -> object:
        calls.append(method)
        return real(method, *args, **kwargs)

    monkeypatch.setattr(initial, "_pretrain", counting)
    results, frame = _run(tmp_path, "cache", "matrix:\n  init: [rotation]\n  strategy: [random, entropy]\n")
    assert len(frame) == 4 and calls == ["rotation"]  # two cells, one pre-training
    [weights] = (results / "_pretrained").glob("*.pt")
    _, frame = _run(tmp_path, "ckpt", f"matrix:\n  init: ['checkpoint:{weights}']\n")
    assert len(frame) == 2 and calls == ["rotation"]


def test_views_change_the_pool_the_strategies_choose_from(tmp_path: Path) -> None:
    from benchmark.config import ViewConfig
    from benchmark.data.digits import load_digits_dataset
    from benchmark.data.views import view_pool_indices

    _, frame = _run(tmp_path, "views", """\
include:
  - {view: {imbalance: 10.0}}
  - {view: {redundancy: {unique: 100, copies: 3}}}
""")
    assert len(frame) == 4
    labels = load_digits_dataset(Path(".")).train_y.numpy()
    for _, rows in frame.groupby("cell_id"):
        view = ViewConfig.model_validate(rows.iloc[0][["view.imbalance", "view.redundancy.unique",
                                                       "view.redundancy.copies"]].dropna().pipe(_nest))
        pool = view_pool_indices(labels, 10, view, 0)
        selected = np.concatenate(rows["selected"].to_list())
        assert selected.max() < len(pool)  # indices are positions in the view's pool


def _nest(flat: object) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in dict(flat).items():  # type: ignore[call-overload]
        *parents, leaf = key.removeprefix("view.").split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})  # type: ignore[assignment]
        node[leaf] = int(value) if leaf in ("unique", "copies") else float(value)
    return out


def test_npz_dataset_by_path_runs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (120, 8, 8, 3), dtype=np.uint8)
    y = np.repeat(np.arange(4), 30)
    x[np.arange(120), :, :, 0] = (y * 60)[:, None, None]  # class visible in the red channel
    np.savez(tmp_path / "toy.npz", x_train=x[:80], y_train=y[:80], x_test=x[80:], y_test=y[80:])
    suite = write_suite(tmp_path, "npz", f"""\
        defaults:
          dataset: 'npz:{tmp_path / "toy.npz"}'
          backbone: small_cnn
          strategy: margin
          budget: {{initial: 8, query: 8, rounds: 2}}
          training: {{epochs: 3, batch_size: 8}}
        matrix:
          seed: [0]
        """)
    assert cli.main(["run", str(suite), "--results", str(tmp_path / "r"), "--quiet"]) == 0
    frame = load_results(tmp_path / "r")
    assert list(frame["n_labeled"]) == [8, 16, 24]


@pytest.mark.parametrize(("body", "message"), [
    ("  init: simclr\n", "unknown init 'simclr'"),
    ("  init: imagenet\n", "backbone 'small_cnn' has no ImageNet weights"),
    ("  training: {head: linear}\n  strategy: learning_loss\n", "freezes the backbone"),
    ("  training: {semi: label_propagation}\n  strategy: ceal\n", "does not combine CEAL with SEMI"),
    ("  view: {imbalance: 0.5}\n", "imbalance ratio must be >= 1"),
    ("  view: {redundancy: {unique: 1000, copies: 2}}\n  budget: {initial: 1000, query: 600, rounds: 2}\n",
     "with this view has only"),
    ("  dataset: 'npz:/no/such/file.npz'\n", "/no/such/file.npz"),
    ("  training: {schedule: {name: constant, t_max: 10}}\n", "t_max is the period of the cosine schedule"),
    ("  training: {epoch_length: pool}\n", "training.epoch_length: pool pairs labeled with unlabeled batches"),
])
def test_invalid_settings_are_clear_errors(tmp_path: Path, body: str, message: str) -> None:
    # the body's keys replace the head's (a key twice in a mapping is an error)
    keys = {line.split(":")[0] for line in body.splitlines()}
    head = "".join(line for line in HEAD.format(name="bad").splitlines(keepends=True) if line.split(":")[0] not in keys)
    path = write_suite(tmp_path, "bad", head + body + "matrix:\n  seed: [0]\n")
    with pytest.raises(ConfigError) as err:
        load_suite(path)
    assert message in str(err.value), str(err.value)


def test_strategy_params_reach_the_strategy_and_label_it_in_reports(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmark.report.frame import with_labels
    from benchmark.strategies.bayesian import BALD

    made: list[int] = []
    real_init = BALD.__init__

    @functools.wraps(real_init)  # keeps the signature alb validates parameters against
    def recording_init(self, passes: int = 20) -> None:  # type: ignore[no-untyped-def]
        made.append(passes)
        real_init(self, passes)

    monkeypatch.setattr(BALD, "__init__", recording_init)
    _, frame = _run(tmp_path, "params", """\
matrix:
  strategy: [bald]
  strategy_params: [null, {passes: 5}]
""")
    assert sorted(made) == [5, 20]
    labels = set(with_labels(frame)["strategy_label"])
    assert labels == {"bald", "bald (passes=5)"}
    assert set(frame["strategy_params.passes"].dropna()) == {5}


@pytest.mark.parametrize(("params", "message"), [
    ("{passe: 5}", "'bald' has no parameter 'passe'. Its parameters (with defaults): passes=20. Did you mean "
                   "'passes'?"),
    ("{passes: 2.5}", "strategy_params.passes: 'bald' expects int, got 2.5"),
])
def test_unknown_or_mistyped_strategy_params_are_clear_errors(tmp_path: Path, params: str, message: str) -> None:
    path = write_suite(tmp_path, "bad", HEAD.format(name="bad").replace("strategy: entropy", "strategy: bald")
                       + f"  strategy_params: {params}\nmatrix:\n  seed: [0]\n")
    with pytest.raises(ConfigError) as err:
        load_suite(path)
    assert message in str(err.value) and f"{path}:" in str(err.value), str(err.value)
