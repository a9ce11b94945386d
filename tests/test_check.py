"""alb check: a faithful result passes, a doctored one fails; every verdict of the comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import TINY_SUITE, write_suite

from benchmark import cli
from benchmark.report.frame import with_labels
from benchmark.report.references import Reference, compare
from benchmark.store import load_results


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("check")
    suite = write_suite(root, "tiny", TINY_SUITE)
    results = root / "results"
    assert cli.main(["run", str(suite), "--results", str(results)]) == 0
    return suite, results


def _copy_results(src: Path, dst: Path) -> Path:
    for path in src.rglob("*.parquet"):
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    return dst


def _doctor_accuracy(results: Path, strategy: str, delta: float) -> None:
    for path in results.rglob("*.parquet"):
        table = pq.read_table(path)
        if table.column("strategy")[0].as_py() != strategy:
            continue
        i = table.schema.get_field_index("accuracy")
        lowered = [max(0.0, a + delta) for a in table.column("accuracy").to_pylist()]
        pq.write_table(table.set_column(i, "accuracy", pa.array(lowered)), path)


def test_faithful_results_pass_and_doctored_results_fail(finished: tuple[Path, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    suite, results = finished
    baseline = tmp_path / "baseline.json"
    assert cli.main(["check", str(suite), "--results", str(results), "--save-baseline", str(baseline)]) == 0
    entries = json.loads(baseline.read_text())["entries"]
    assert len(entries) == 2 * 3  # 2 strategies x 3 label counts
    assert cli.main(["check", str(suite), "--results", str(results), "--baseline", str(baseline)]) == 0
    assert "6 pass, 0 regression" in capsys.readouterr().out

    doctored = _copy_results(results, tmp_path / "doctored")
    _doctor_accuracy(doctored, "entropy", -0.5)
    assert cli.main(["check", str(suite), "--results", str(doctored), "--baseline", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "0 improved" in out


def test_missing_results_fail_unless_allowed(finished: tuple[Path, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    suite, results = finished
    baseline = tmp_path / "baseline.json"
    cli.main(["check", str(suite), "--results", str(results), "--save-baseline", str(baseline)])
    empty = tmp_path / "empty"
    assert cli.main(["check", str(suite), "--results", str(empty), "--baseline", str(baseline)]) == 1
    assert "6 missing" in capsys.readouterr().out
    assert cli.main(["check", str(suite), "--results", str(empty), "--baseline", str(baseline),
                     "--allow-missing"]) == 0


def test_check_without_references_or_baseline_is_a_clear_error(finished: tuple[Path, Path],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    suite, results = finished
    assert cli.main(["check", str(suite), "--results", str(results)]) == cli.EXIT_USAGE
    assert "nothing to check against" in capsys.readouterr().err
    assert cli.main(["check", str(suite), "--baseline", "nope.json"]) == cli.EXIT_USAGE
    assert "--save-baseline" in capsys.readouterr().err


def _reference(**overrides: object) -> Reference:
    fields = {"id": "ref", "dataset": "digits", "backbone": "small_cnn", "strategy": "entropy",
              "setting": {"training.start": "warm"}, "n_labeled": None, "metric": "accuracy", "mean": 0.5,
              "std": 0.01, "runs": 3, "source": "test"}
    fields.update(overrides)
    return Reference(**fields)  # type: ignore[arg-type]


def test_each_verdict_of_the_comparison(finished: tuple[Path, Path]) -> None:
    _, results = finished
    frame = with_labels(load_results(results))
    final = frame[(frame["strategy"] == "entropy") & (frame["round"] == 2)]
    ours = float(final.groupby("seed")["accuracy"].mean().mean())

    def verdict(ref: Reference, abs_tol: float = 0.01) -> tuple[str, str]:
        [c] = compare(ref, frame, abs_tol, 2.0)
        return c.status, c.reason

    assert verdict(_reference(mean=ours))[0] == "pass"
    assert verdict(_reference(mean=ours + 0.5, std=0.0))[0] == "regression"
    assert verdict(_reference(mean=ours - 0.5, std=0.0))[0] == "improved"
    assert verdict(_reference(mean=ours + 0.5, std=0.0), abs_tol=0.6)[0] == "pass"
    at_20 = frame[(frame["strategy"] == "entropy") & (frame["n_labeled"] == 20)]["accuracy"].mean()
    assert verdict(_reference(mean=float(at_20), n_labeled=20))[0] == "pass"
    status, reason = verdict(_reference(n_labeled=25))
    assert status == "not comparable" and "no round at 25" in reason
    status, reason = verdict(_reference(setting={"training.start": "cold"}))
    assert status == "not comparable" and "training.start is cold in the reference" in reason
    status, reason = verdict(_reference(setting={"init": "simsiam"}))
    assert status == "not comparable" and "init is simsiam in the reference, scratch in our results" in reason
    status, reason = verdict(_reference(strategy="full"))  # a name alb does not implement (full training)
    assert status == "not comparable" and "not implemented" in reason
    assert verdict(_reference(metric="seconds"))[0] == "not comparable"
    assert verdict(_reference(strategy="margin"))[0] == "missing"
    assert verdict(_reference(setting={"initial_strategy": "least_confidence"}))[0] == "not comparable"


def test_a_reference_setting_true_means_set_to_any_value() -> None:
    from benchmark.report.references import _same

    # seed 000's class-imbalance table: an imbalance of unknown ratio (view.imbalance: true)
    assert _same(10.0, True) and _same("[500, 100]", True)
    assert not _same(None, True) and not _same(float("nan"), True)
    assert not _same(False, True) and _same(True, True)  # boolean settings still compare exactly
