"""Flags and inputs that used to fail every cell, or pass unnoticed, are refused once and up front (issue 20, items
13-14): --threads past the cores, --device tpu, --tolerance / --k NaN, an init checkpoint that is a folder, a FIFO
or a device; and a user's control or bidirectional characters are escaped in error messages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import TINY_SUITE, write_suite

from benchmark import cli
from benchmark.config import CellConfig
from benchmark.errors import ConfigError, escape_unsafe
from benchmark.suite import load_suite


def _argparse_refusal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as refused:
        cli.main(argv)
    assert refused.value.code == cli.EXIT_USAGE
    return capsys.readouterr().err


def _nothing_ran(results: Path) -> None:
    """No claim, no failure log, no result: nothing was started."""
    assert not list(results.rglob("*.claim")) and not list(results.rglob("*.failed.log"))
    assert not list(results.rglob("*.parquet"))


@pytest.mark.parametrize(("threads", "expected"), [
    ("100000", f"expected 1 to {cli.MAX_THREADS} threads, got 100000"), ("0", "got 0"), ("-3", "got -3"),
    ("two", f"expected 1 to {cli.MAX_THREADS} threads, got 'two'")])
def test_impossible_thread_counts_are_refused_before_anything_runs(tmp_path: Path, threads: str, expected: str,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path, "tiny", TINY_SUITE)
    err = _argparse_refusal(["run", str(suite), "--results", str(tmp_path / "r"), "--threads", threads], capsys)
    assert expected in err
    _nothing_ran(tmp_path)


def test_more_threads_than_cores_are_refused_locally(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmark.executors.common import cores

    suite = write_suite(tmp_path, "tiny", TINY_SUITE)
    too_many = str(min(cores() + 1, cli.MAX_THREADS))
    if int(too_many) <= cores():
        pytest.skip("a machine with more cores than MAX_THREADS")
    assert cli.main(["run", str(suite), "--results", str(tmp_path / "r"), "--threads", too_many]) == cli.EXIT_USAGE
    assert f"--threads {too_many}: this machine has {cores()} cores" in capsys.readouterr().err
    _nothing_ran(tmp_path)


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "cuda:-1", "gpu", "cpu ", "\x1b[2Jcpu"])
def test_an_unknown_device_is_one_refusal_not_a_failure_per_cell(tmp_path: Path, device: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path, "tiny", TINY_SUITE)
    for extra in ([], ["--dry-run"]):
        err = _argparse_refusal(["run", str(suite), "--results", str(tmp_path / "r"), "--device", device, *extra],
                                capsys)
        assert "expected auto, cpu, cuda or cuda:N" in err and "\x1b" not in err
    _nothing_ran(tmp_path)


def test_a_gpu_this_machine_lacks_is_refused_before_any_cell(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    suite = write_suite(tmp_path, "tiny", TINY_SUITE)
    device = f"cuda:{torch.cuda.device_count() + 7}"
    assert cli.main(["run", str(suite), "--results", str(tmp_path / "r"), "--device", device]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert f"--device {device}" in err and ("CUDA is not available" in err or "GPU(s)" in err)
    _nothing_ran(tmp_path)


@pytest.mark.parametrize("flag", ["--tolerance", "--k", "verify --tolerance"])
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "-0.5", "x"])
def test_thresholds_must_be_finite_and_non_negative(tmp_path: Path, flag: str, value: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path, "tiny", TINY_SUITE)
    command = ["verify", str(tmp_path / "b.tar.gz")] if flag.startswith("verify") else \
        ["check", str(suite), "--results", str(tmp_path)]
    option = flag.split()[-1]
    err = _argparse_refusal([*command, f"{option}={value}"], capsys)
    assert f"argument {option}: expected a finite number >= 0, got '{value}'" in err


# ---------------------------------------------------------------- init: checkpoint:PATH


def _special_file(tmp_path: Path, kind: str) -> tuple[Path, str]:
    if kind == "fifo":
        path = tmp_path / "weights.pt"
        os.mkfifo(path)
        return path, "is a FIFO, not a file"
    if kind == "folder":
        path = tmp_path / "weights"
        path.mkdir()
        return path, "is a folder, not a file"
    if kind == "missing":
        return tmp_path / "nope.pt", "does not exist"
    return Path("/dev/zero"), "is a device, not a file"


@pytest.mark.parametrize("kind", ["fifo", "folder", "dev_zero", "missing"])
def test_a_checkpoint_that_is_not_a_file_is_refused_when_the_suite_loads(tmp_path: Path, kind: str) -> None:
    if kind == "dev_zero" and not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    path, problem = _special_file(tmp_path, kind)
    suite = write_suite(tmp_path, "ckpt", TINY_SUITE.replace("  backbone: small_cnn\n",
                                                             f"  backbone: small_cnn\n  init: 'checkpoint:{path}'\n"))
    with pytest.raises(ConfigError) as caught:  # a FIFO is never opened: this would hang otherwise
        load_suite(suite)
    message = str(caught.value)
    assert f"{suite}:5: key 'init': init checkpoint: '{path}' {problem}" in message


def test_a_regular_checkpoint_file_passes_validation(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    path.write_bytes(b"not read at validation")
    config = CellConfig.model_validate({"dataset": "digits", "backbone": "small_cnn", "strategy": "random",
                                        "budget": {"initial": 10, "query": 10, "rounds": 1},
                                        "init": f"checkpoint:{path}"})
    assert config.init == f"checkpoint:{path}"


# ---------------------------------------------------------------- escaping


def test_escape_unsafe_writes_controls_and_bidi_overrides_as_escapes() -> None:
    assert escape_unsafe("a\x1b[31mb\u202ec\u2066d\x07") == "a\\x1b[31mb\\u202ec\\u2066d\\x07"
    assert escape_unsafe("two\nlines\tand tab") == "two\nlines\tand tab"
    assert escape_unsafe("two\nlines", newlines=False) == "two\\nlines"
    assert escape_unsafe("héllo wörld 日本 🙂") == "héllo wörld 日本 🙂"


@pytest.mark.parametrize("where", ["strategy", "key", "dataset"])
@pytest.mark.parametrize("hostile", ["\x1b[2J\x1b[31mentropy", "ent\u202eyportne", "a\u2067b\u2069", "x\ry\x00"])
def test_user_strings_in_error_messages_are_escaped(tmp_path: Path, hostile: str, where: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    quoted = f'"{escape_unsafe(hostile)}"'  # YAML's escapes: the file itself is plain text
    text = {"strategy": TINY_SUITE.replace("[random, entropy]", f"[random, {quoted}]"),
            "key": TINY_SUITE + f"  {quoted}: [1]\n",
            "dataset": TINY_SUITE.replace("dataset: digits", f"dataset: {quoted}")}[where]
    suite = write_suite(tmp_path, "evil", text)
    assert cli.main(["run", str(suite), "--results", str(tmp_path / "r"), "--dry-run"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "invalid suite" in err, err
    assert not any(ch in err for ch in "\x1b\u202e\u2067\u2069\r\x00"), ascii(err)
    assert escape_unsafe(hostile, newlines=False) in err
