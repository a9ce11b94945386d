"""alb list / status / run --dry-run, and that cheap commands never import torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, alb_env

from benchmark import cli
from benchmark.suite import load_suite


def test_list_shows_every_registry(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmark.models import BACKBONES
    from benchmark.strategies import STRATEGIES

    for what, expected in (("strategies", STRATEGIES.names()),
                           ("backbones", BACKBONES.names()),
                           ("datasets", ["digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "svhn",
                                         "tiny_imagenet", "caltech101", "stl10", "digits_detection", "voc2007",
                                         "voc2012"])):
        assert cli.main(["list", what]) == 0
        assert capsys.readouterr().out.split() == sorted(expected)
    assert cli.main(["list", "strategies", "--details"]) == 0
    details = capsys.readouterr().out
    assert "HC for the initial set, LC afterwards" in details
    assert "parameters: passes=20" in details and "parameters: none" in details


def test_list_suites_from_the_repository(capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert cli.main(["list", "suites", "--details"]) == 0
    assert "suites/quickstart.yaml  18 cells" in capsys.readouterr().out


def test_dry_run_lists_cells_and_runs_nothing(tiny_suite: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    assert cli.main(["run", str(tiny_suite), "--results", str(results), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for cell in load_suite(tiny_suite).cells:
        assert cell.id in out
    assert "4 cells (0 done, 4 pending), 4 to run" in out
    assert not (results / "tiny").exists()


def test_status_moves_from_pending_to_done(tiny_suite: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    results = str(tmp_path)
    assert cli.main(["status", str(tiny_suite), "--results", results]) == 0
    assert "4 pending" in capsys.readouterr().out
    assert cli.main(["run", str(tiny_suite), "--results", results]) == 0
    capsys.readouterr()
    assert cli.main(["status", str(tiny_suite), "--results", results]) == 0
    assert "4 cells: 4 done" in capsys.readouterr().out


def test_bad_suite_gives_a_clean_error_and_exit_code_2(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", str(tmp_path / "nope.yaml")]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("alb: error: suite file not found") and "Traceback" not in err


def test_validating_and_skipping_finished_cells_does_not_import_torch(tiny_suite: Path,
                                                                      tmp_path: Path) -> None:
    assert cli.main(["run", str(tiny_suite), "--results", str(tmp_path)]) == 0
    script = (
        "import sys\nfrom benchmark import cli\n"
        f"assert cli.main(['run', {str(tiny_suite)!r}, '--results', {str(tmp_path)!r}]) == 0\n"
        f"assert cli.main(['status', {str(tiny_suite)!r}, '--results', {str(tmp_path)!r}]) == 0\n"
        "assert cli.main(['list', 'strategies']) == 0\n"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'pandas', 'sklearn') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=alb_env(), capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert "HEAVY []" in out


def test_threads_option_is_applied_recorded_and_validated(tiny_suite: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from benchmark.store import load_results

    before = torch.get_num_threads()
    try:
        assert cli.main(["run", str(tiny_suite), "--results", str(tmp_path), "--threads", "1"]) == 0
        assert set(load_results(tmp_path)["torch_threads"]) == {"1"}
    finally:
        torch.set_num_threads(before)
    with pytest.raises(SystemExit) as refused:  # argparse: the usage and the reason, exit status 2
        cli.main(["run", str(tiny_suite), "--results", str(tmp_path), "--threads", "0"])
    assert refused.value.code == cli.EXIT_USAGE
    assert f"--threads: expected 1 to {cli.MAX_THREADS} threads, got 0" in capsys.readouterr().err
