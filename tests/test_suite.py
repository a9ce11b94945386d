"""Suite files: parsing, expansion (matrix / include / exclude), validation errors, cell ids."""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.config import CellConfig
from benchmark.errors import ConfigError
from benchmark.models import BACKBONES
from benchmark.strategies import STRATEGIES, initial_strategy_names
from benchmark.suite import Suite, load_suite

QUICKSTART = Path(__file__).resolve().parents[1] / "suites" / "quickstart.yaml"

# A valid base: every required key but 'strategy', small enough for digits (1347 images).
BASE = """\
defaults:
  dataset: digits
  backbone: small_cnn
  budget: {initial: 20, query: 20, rounds: 8}
  training:
    epochs: 3
    optimizer: {name: sgd, lr: 0.05}
"""

ALL_STRATEGIES = ", ".join(STRATEGIES.names())
PLAIN_STRATEGIES = ", ".join(initial_strategy_names())


# --------------------------------------------------------------------------- helpers


def write_suite(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def suite_of(tmp_path: Path, text: str, name: str = "suite.yaml") -> Suite:
    return load_suite(write_suite(tmp_path, text, name))


def error_of(path: Path) -> str:
    """The message of the ConfigError that loading ``path`` raises."""
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    return str(info.value)


def line_no(path: Path, needle: str) -> int:
    """1-based number of the first line of ``path`` that contains ``needle``."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def ids_by(suite: Suite, *keys: str) -> dict[tuple[object, ...], str]:
    """Cell id keyed by the resolved values of ``keys`` (dotted paths into the config)."""
    out: dict[tuple[object, ...], str] = {}
    for cell in suite.cells:
        dumped = cell.config.canonical()
        values: list[object] = []
        for key in keys:
            node: object = dumped
            for part in key.split("."):
                assert isinstance(node, dict)
                node = node[part]
            values.append(node)
        out[tuple(values)] = cell.id
    return out


def single_id(tmp_path: Path, text: str, name: str = "one.yaml") -> str:
    suite = suite_of(tmp_path, text, name)
    assert len(suite.cells) == 1, [c.axes for c in suite.cells]
    return suite.cells[0].id


# --------------------------------------------------------------------------- quickstart


def test_quickstart_expands_to_18_cells() -> None:
    suite = load_suite(QUICKSTART)
    assert suite.name == "quickstart"
    assert suite.axes == ["strategy", "seed"]
    assert len(suite.cells) == 18
    assert len({c.id for c in suite.cells}) == 18
    strategies = Counter(c.config.strategy for c in suite.cells)
    assert strategies == {s: 3 for s in ("random", "entropy", "margin", "least_confidence",
                                         "high_confidence", "hclc")}
    assert Counter(c.config.seed for c in suite.cells) == {0: 6, 1: 6, 2: 6}
    for cell in suite.cells:
        assert cell.config.dataset == "digits"
        assert cell.config.training.epochs == 25 and cell.config.backbone == "tiny_cnn"
        assert cell.config.budget.total == 20 + 8 * 20
        assert cell.axes == {"strategy": cell.config.strategy, "seed": cell.config.seed}
        assert re.fullmatch(r"[0-9a-f]{16}", cell.id)


def test_quickstart_resolves_initial_strategy() -> None:
    suite = load_suite(QUICKSTART)
    initial = {c.config.strategy: c.config.initial_strategy for c in suite.cells}
    assert initial["hclc"] == "high_confidence"
    for plain in ("random", "entropy", "margin", "least_confidence", "high_confidence"):
        assert initial[plain] == "random"


def test_cell_id_is_the_configs_content_address() -> None:
    suite = load_suite(QUICKSTART)
    for cell in suite.cells:
        again = CellConfig.model_validate(cell.config.canonical())
        assert again.cell_id() == cell.id


# --------------------------------------------------------------------------- key errors


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE + "matrx:\n  strategy: [random]\n")
    msg = error_of(path)
    assert f"{path}:{line_no(path, 'matrx:')}:" in msg
    assert "unknown key 'matrx'" in msg
    assert ("Allowed keys here: assumptions, defaults, description, exclude, include, matrix, name, "
            "references.") in msg
    assert "Did you mean 'matrix'?" in msg


def test_unknown_key_in_defaults(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE.replace("epochs: 3", "epoch: 3")
                       + "matrix:\n  strategy: [random]\n")
    msg = error_of(path)
    assert re.search(rf"{re.escape(str(path))}:\d+: defaults: unknown key 'training.epoch'", msg)
    assert "Allowed: " in msg
    assert "training.epochs" in msg and "training.batch_size" in msg
    assert "Did you mean 'training.epochs'?" in msg


def test_unknown_nested_key_in_defaults_points_at_its_line(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE.replace("epochs: 3", "epoch: 3")
                       + "matrix:\n  strategy: [random]\n")
    assert f"{path}:{line_no(path, 'epoch: 3')}:" in error_of(path)


def test_unknown_top_level_key_in_defaults(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE + "  sed: 3\nmatrix:\n  strategy: [random]\n")
    msg = error_of(path)
    assert f"{path}:{line_no(path, 'sed: 3')}:" in msg
    assert "defaults: unknown key 'sed'" in msg
    assert ("Allowed: dataset, backbone, strategy, initial_strategy, candidate, strategy_params, pool_subset, seed, "
            "budget, training, init, "
            "pretraining, view, detection.") in msg
    assert "Did you mean 'seed'?" in msg


def test_unknown_matrix_axis(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE + "matrix:\n  stratgy: [random, entropy]\n")
    msg = error_of(path)
    assert f"{path}:{line_no(path, 'stratgy')}:" in msg
    assert "matrix: unknown key 'stratgy'" in msg
    assert "Did you mean 'strategy'?" in msg


def test_unknown_dotted_matrix_axis(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE + "matrix:\n  strategy: [random]\n"
                       "  training.strat: [warm, cold]\n")
    msg = error_of(path)
    assert f"{path}:{line_no(path, 'training.strat:')}:" in msg
    assert "matrix: unknown key 'training.strat'" in msg
    assert "Did you mean 'training.start'?" in msg


def test_unknown_key_inside_dict_valued_axis(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE + "matrix:\n  strategy: [random]\n"
                       "  training: [{epoch: 5}]\n")
    msg = error_of(path)
    assert f"{path}:{line_no(path, 'training: [{epoch')}:" in msg
    assert "unknown key 'training.epoch'" in msg
    assert ("Allowed keys here: augmentation, aux, aux_detach_epoch, aux_margin, aux_weight, batch_size, "
            "conv_dropout, epoch_length, epochs, flip, head, head_dropout, optimizer, schedule, semi, semi_alpha, "
            "semi_batch_size, semi_gamma, semi_graph, semi_k, semi_warmup_epochs, start, svm_c.") in msg
    assert "Did you mean 'epochs'?" in msg


def test_unknown_key_in_include_and_exclude(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE + "matrix:\n  strategy: [random]\n"
                       "include:\n  - {strategy: entropy, sed: 1}\n"
                       "exclude:\n  - {stratgy: random}\n")
    msg = error_of(path)
    assert "include[0]: unknown key 'sed'" in msg and "Did you mean 'seed'?" in msg
    assert "exclude[0]: unknown key 'stratgy'" in msg and "Did you mean 'strategy'?" in msg
    assert f"{path}:{line_no(path, 'sed: 1')}:" in msg
    assert f"{path}:{line_no(path, 'stratgy')}:" in msg


# --------------------------------------------------------------------------- type errors


@pytest.mark.parametrize(
    ("old", "new", "key", "got"),
    [
        ("epochs: 3", "epochs: ten", "training.epochs", "(got 'ten')"),
        ("lr: 0.05", "lr: fast", "training.optimizer.lr", "(got 'fast')"),
        ("epochs: 3", "epochs: 3.5", "training.epochs", "(got 3.5)"),
        ("rounds: 8", "rounds: '8'", "budget.rounds", "(got '8')"),
    ],
)
def test_wrong_type_in_defaults(tmp_path: Path, old: str, new: str, key: str, got: str) -> None:
    path = write_suite(tmp_path, BASE.replace(old, new) + "matrix:\n  strategy: [random]\n")
    msg = error_of(path)
    assert f"key '{key}'" in msg
    assert got in msg
    assert f"{path}:{line_no(path, new.split(':')[0] + ':')}:" in msg


@pytest.mark.parametrize(("value", "got"), [("1.5", "(got 1.5)"),
                                            ("true", "(got True)"),
                                            ("'one'", "(got 'one')")])
def test_wrong_type_in_matrix(tmp_path: Path, value: str, got: str) -> None:
    path = write_suite(tmp_path, BASE + f"matrix:\n  strategy: [random]\n  seed: [0, {value}]\n")
    msg = error_of(path)
    assert "key 'seed': Input should be a valid integer" in msg
    assert got in msg
    assert f"{path}:{line_no(path, 'seed:')}:" in msg
    # only the bad cell is reported
    assert "seed: 0}" not in msg


def test_matrix_axis_must_be_a_list(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE + "matrix:\n  strategy: random\n")
    msg = error_of(path)
    assert f"{path}:{line_no(path, 'strategy: random')}:" in msg
    assert "key 'matrix.strategy'" in msg and "valid list" in msg


def test_scientific_notation_without_dot_is_a_string(tmp_path: Path) -> None:
    # YAML 1.1 (PyYAML) reads 1e-3 as a string; strict models must reject it by name.
    path = write_suite(tmp_path, BASE.replace("lr: 0.05", "lr: 1e-3")
                       + "matrix:\n  strategy: [random]\n")
    msg = error_of(path)
    assert "key 'training.optimizer.lr'" in msg and "(got '1e-3')" in msg


# --------------------------------------------------------------------------- value errors


def test_unknown_strategy(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE + "matrix:\n  strategy: [random, entropi]\n")
    msg = error_of(path)
    assert f"{path}:{line_no(path, 'strategy:')}:" in msg
    assert "key 'strategy': unknown strategy 'entropi'" in msg
    assert f"Allowed: {ALL_STRATEGIES}." in msg
    assert "Did you mean 'entropy'?" in msg
    assert "cell {strategy: entropi}" in msg
    assert "strategy: random}" not in msg


def test_unknown_dataset(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE.replace("dataset: digits", "dataset: digit")
                       + "matrix:\n  strategy: [random]\n")
    msg = error_of(path)
    assert f"{path}:{line_no(path, 'dataset:')}:" in msg
    assert "unknown dataset 'digit'" in msg
    assert ("Allowed: caltech101, cifar10, cifar100, digits, digits_detection, fashion_mnist, mnist, stl10, svhn, "
            "tiny_imagenet, voc2007, voc2012.") in msg
    assert "Did you mean 'digits'?" in msg


def test_unknown_backbone(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE.replace("small_cnn", "smal_cnn")
                       + "matrix:\n  strategy: [random]\n")
    msg = error_of(path)
    assert f"{path}:{line_no(path, 'backbone:')}:" in msg
    assert f"unknown backbone 'smal_cnn'. Allowed: {', '.join(BACKBONES.names())}." in msg
    assert "Did you mean 'small_cnn'?" in msg


def test_unknown_initial_strategy(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE + "  initial_strategy: entropi\n"
                       "matrix:\n  strategy: [random]\n")
    msg = error_of(path)
    assert f"{path}:{line_no(path, 'initial_strategy:')}:" in msg
    assert "unknown initial strategy 'entropi'" in msg
    assert f"Allowed: {PLAIN_STRATEGIES}." in msg
    assert "Did you mean 'entropy'?" in msg


def test_schedule_is_not_an_initial_strategy(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE + "  initial_strategy: hclc\nmatrix:\n  strategy: [random]\n")
    msg = error_of(path)
    assert "unknown initial strategy 'hclc'" in msg


def test_unknown_literal_value(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE + "    augmentation: standart\n"
                       "matrix:\n  strategy: [random]\n")
    msg = error_of(path)
    assert f"{path}:{line_no(path, 'augmentation:')}:" in msg
    assert "key 'training.augmentation'" in msg
    assert "'none', 'standard', 'strong' or 'resized_crop'" in msg
    assert "Did you mean 'standard'?" in msg
    assert "(got 'standart')" in msg


def test_unknown_literal_value_in_matrix(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE + "matrix:\n  strategy: [random]\n"
                       "  training.start: [warm, cld]\n")
    msg = error_of(path)
    assert f"{path}:{line_no(path, 'training.start:')}:" in msg
    assert "key 'training.start'" in msg and "'warm' or 'cold'" in msg
    assert "Did you mean 'cold'?" in msg


def test_impossible_budget(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE.replace("rounds: 8", "rounds: 80")
                       + "matrix:\n  strategy: [random]\n")
    msg = error_of(path)
    assert str(path) in msg
    assert "20 + 80 x 20 = 1620 labels" in msg
    assert "dataset 'digits' has only 1347 training images" in msg
    assert "budget.rounds" in msg


def test_budget_exactly_the_pool_is_allowed(tmp_path: Path) -> None:
    # 47 + 65 x 20 = 1347: the boundary is inclusive
    suite = suite_of(tmp_path, BASE.replace("{initial: 20, query: 20, rounds: 8}",
                                            "{initial: 47, query: 20, rounds: 65}")
                     + "matrix:\n  strategy: [random]\n")
    assert suite.cells[0].config.budget.total == 1347


@pytest.mark.parametrize("bad", ["initial: 0", "query: 0", "rounds: -1"])
def test_budget_bounds(tmp_path: Path, bad: str) -> None:
    key = bad.split(":")[0]
    old = {"initial": "initial: 20", "query": "query: 20", "rounds": "rounds: 8"}[key]
    path = write_suite(tmp_path, BASE.replace(old, bad) + "matrix:\n  strategy: [random]\n")
    msg = error_of(path)
    assert f"key 'budget.{key}'" in msg


def test_missing_required_key(tmp_path: Path) -> None:
    text = BASE.replace("  budget: {initial: 20, query: 20, rounds: 8}\n", "")
    path = write_suite(tmp_path, text + "matrix:\n  strategy: [random]\n")
    msg = error_of(path)
    assert re.search(rf"{re.escape(str(path))}:\d+: ", msg)
    assert "missing required key 'budget'" in msg


def test_missing_strategy(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE + "matrix:\n  seed: [0]\n")
    assert "missing required key 'strategy'" in error_of(path)


def test_missing_budget_field(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE.replace(", rounds: 8", "")
                       + "matrix:\n  strategy: [random]\n")
    assert "missing required key 'budget.rounds'" in error_of(path)


def test_multistep_without_milestones(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE + "    schedule: {name: multistep}\n"
                       "matrix:\n  strategy: [random]\n")
    msg = error_of(path)
    assert f"{path}:{line_no(path, 'schedule:')}:" in msg
    assert "key 'training.schedule'" in msg
    assert "schedule 'multistep' needs a non-empty list 'milestones'" in msg


def test_multistep_with_milestones_is_fine(tmp_path: Path) -> None:
    suite = suite_of(tmp_path, BASE + "    schedule: {name: multistep, milestones: [1, 2]}\n"
                     "matrix:\n  strategy: [random]\n")
    assert suite.cells[0].config.training.schedule.milestones == [1, 2]


def test_milestones_must_increase(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE + "    schedule: {name: multistep, milestones: [2, 1]}\n"
                       "matrix:\n  strategy: [random]\n")
    assert "milestones must be positive and strictly increasing, got [2, 1]" in error_of(path)


def test_empty_matrix_axis(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE + "matrix:\n  strategy: [random]\n  seed: []\n")
    msg = error_of(path)
    assert f"{path}:{line_no(path, 'seed: []')}:" in msg
    assert "matrix: axis 'seed' has no values" in msg


def test_exclude_that_matches_nothing(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE + "matrix:\n  strategy: [random, entropy]\n"
                       "exclude:\n  - {strategy: entropy}\n  - {strategy: margin}\n")
    msg = error_of(path)
    assert f"{path}:{line_no(path, 'strategy: margin')}:" in msg
    assert "exclude[1] {'strategy': 'margin'} matches no cell" in msg
    assert "exclude[0]" not in msg


def test_schedule_with_conflicting_initial_strategy(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE + "  initial_strategy: least_confidence\n"
                       "matrix:\n  strategy: [hclc]\n")
    msg = error_of(path)
    assert str(path) in msg
    assert "strategy 'hclc' is a schedule whose initial strategy is 'high_confidence'" in msg
    assert "remove initial_strategy 'least_confidence'" in msg


def test_schedule_with_its_own_initial_strategy_is_fine(tmp_path: Path) -> None:
    with_it = single_id(tmp_path, BASE + "  initial_strategy: high_confidence\n"
                        "matrix:\n  strategy: [hclc]\n", "a.yaml")
    without = single_id(tmp_path, BASE + "matrix:\n  strategy: [hclc]\n", "b.yaml")
    assert with_it == without


def test_errors_from_several_cells_are_all_listed(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE + "matrix:\n  strategy: [entropi, margn]\n")
    msg = error_of(path)
    assert msg.startswith("invalid suite:")
    assert "Did you mean 'entropy'?" in msg and "Did you mean 'margin'?" in msg


def test_many_errors_are_truncated(tmp_path: Path) -> None:
    names = ", ".join(f"bad{i}" for i in range(15))
    path = write_suite(tmp_path, BASE + f"matrix:\n  strategy: [{names}]\n")
    msg = error_of(path)
    assert "unknown strategy 'bad11'" in msg
    assert "unknown strategy 'bad12'" not in msg
    assert "... and 3 more" in msg


def test_invalid_suite_name(tmp_path: Path) -> None:
    path = write_suite(tmp_path, "name: 'my suite'\n" + BASE + "matrix:\n  strategy: [random]\n")
    msg = error_of(path)
    assert f"{path}:1:" in msg and "key 'name'" in msg and "(got 'my suite')" in msg


# --------------------------------------------------------------------------- file errors


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "", "42\n"])
def test_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = write_suite(tmp_path, text)
    msg = error_of(path)
    assert msg.startswith(f"{path}: a suite file must be a YAML mapping")
    assert "defaults, matrix, include, exclude" in msg


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write_suite(tmp_path, "defaults: {dataset: digits\nmatrix:\n  strategy: [random]\n")
    msg = error_of(path)
    assert msg.startswith(f"{path}: not valid YAML")
    assert "line" in msg


def test_missing_file(tmp_path: Path) -> None:
    write_suite(tmp_path, BASE, "quickstart.yaml")
    write_suite(tmp_path, BASE, "other.yaml")
    missing = tmp_path / "quikstart.yaml"
    msg = error_of(missing)
    assert f"suite file not found: {missing}." in msg
    assert f"Suites in {tmp_path}: other.yaml, quickstart.yaml." in msg


def test_missing_file_in_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "x.yaml"
    assert error_of(missing) == f"suite file not found: {missing}."


def test_folder_is_not_a_suite_file(tmp_path: Path) -> None:
    assert "suite file not found" in error_of(tmp_path)


def test_no_cells(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE + "matrix:\n  strategy: [random, entropy]\n"
                       "exclude:\n  - {strategy: random}\n  - {strategy: entropy}\n")
    msg = error_of(path)
    assert f"{path}: the suite has no cells" in msg


# --------------------------------------------------------------------------- CLI


CLI_CASES = {
    "unknown_strategy": BASE + "matrix:\n  strategy: [entropi]\n",
    "unknown_key": BASE + "matrx:\n  strategy: [random]\n",
    "invalid_yaml": "defaults: [1, 2\n",
    "not_mapping": "- a\n",
    "budget": BASE.replace("rounds: 8", "rounds: 800") + "matrix:\n  strategy: [random]\n",
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
@pytest.mark.parametrize("command", ["run", "status"])
def test_cli_reports_config_errors_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           case: str, command: str) -> None:
    path = write_suite(tmp_path, CLI_CASES[case], f"{case}.yaml")
    results = tmp_path / "results"
    rc = main([command, str(path), "--results", str(results)])
    out, err = capsys.readouterr()
    assert rc == 2
    assert err.startswith("alb: error: ")
    assert str(path) in err
    assert "Traceback" not in err and "Traceback" not in out
    assert not results.exists()


def test_cli_reports_missing_suite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nope.yaml"
    rc = main(["run", str(path), "--results", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(f"alb: error: suite file not found: {path}")
    assert "Traceback" not in err


def test_cli_dry_run_lists_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_suite(tmp_path, BASE + "matrix:\n  strategy: [random, entropy]\n", "ok.yaml")
    rc = main(["run", str(path), "--results", str(tmp_path / "results"), "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "suite 'ok': 2 cells (0 done, 2 pending), 2 to run" in out
    assert "training images (fwd+bwd)" in out
    for cell in load_suite(path).cells:
        assert cell.id in out


# --------------------------------------------------------------------------- expansion


def test_matrix_is_the_cartesian_product(tmp_path: Path) -> None:
    suite = suite_of(tmp_path, BASE + "matrix:\n  strategy: [random, entropy]\n"
                     "  seed: [0, 1, 2]\n  training.start: [warm, cold]\n")
    assert len(suite.cells) == 12
    assert suite.axes == ["strategy", "seed", "training.start"]
    combos = {(c.config.strategy, c.config.seed, c.config.training.start) for c in suite.cells}
    assert len(combos) == 12
    for cell in suite.cells:
        assert cell.axes == {"strategy": cell.config.strategy, "seed": cell.config.seed,
                             "training.start": cell.config.training.start}
        # defaults still apply
        assert cell.config.training.epochs == 3
        assert cell.config.training.optimizer.lr == 0.05


def test_include_adds_cells_that_contradict_every_combination(tmp_path: Path) -> None:
    suite = suite_of(tmp_path, BASE + "matrix:\n  strategy: [random, entropy]\n"
                     "include:\n"
                     "  - {strategy: margin, seed: 7}\n"
                     "  - {strategy: hclc, training.optimizer.lr: 0.01}\n")
    assert len(suite.cells) == 4
    by_label = {c.label(): c.config for c in suite.cells}
    margin = by_label["strategy=margin seed=7"]
    assert margin.seed == 7 and margin.training.epochs == 3
    hclc = by_label["strategy=hclc training.optimizer.lr=0.01"]
    assert hclc.training.optimizer.lr == 0.01
    assert hclc.training.optimizer.name == "sgd"  # merged, not replaced
    assert hclc.training.epochs == 3
    assert hclc.initial_strategy == "high_confidence"


def test_include_extends_the_combinations_it_does_not_contradict(tmp_path: Path) -> None:
    """CI-matrix semantics: {strategy: entropy, pool_subset: 50} gives every entropy cell a subset."""
    suite = suite_of(tmp_path, BASE + "matrix:\n  strategy: [random, entropy]\n  seed: [0, 1]\n"
                     "include:\n"
                     "  - {strategy: entropy, pool_subset: 50}\n"
                     "  - {strategy: random, training: {epochs: 9}}\n")
    assert len(suite.cells) == 4
    for cell in suite.cells:
        cfg = cell.config
        if cfg.strategy == "entropy":
            assert cfg.pool_subset == 50 and cfg.training.epochs == 3
        else:
            assert cfg.pool_subset is None and cfg.training.epochs == 9
    entropy_0 = next(c for c in suite.cells if c.config.strategy == "entropy" and c.config.seed == 0)
    assert entropy_0.axes == {"strategy": "entropy", "seed": 0, "pool_subset": 50}


def test_pool_subset_smaller_than_the_query_is_rejected(tmp_path: Path) -> None:
    path = write_suite(tmp_path, BASE + "  pool_subset: 5\nmatrix:\n  strategy: [entropy]\n")
    msg = error_of(path)
    assert "pool_subset 5 is smaller than budget.query" in msg


def test_exclude_removes_exactly_the_matching_cells(tmp_path: Path) -> None:
    body = ("matrix:\n  strategy: [random, entropy, margin]\n  seed: [0, 1]\n"
            "  training.start: [warm, cold]\n")
    full = suite_of(tmp_path, BASE + body, "full.yaml")
    cut = suite_of(tmp_path, BASE + body + "exclude:\n"
                   "  - {strategy: random, training.start: cold}\n"
                   "  - {strategy: margin, seed: 1, training: {start: warm}}\n", "cut.yaml")
    assert len(full.cells) == 12
    removed = {c.id for c in full.cells} - {c.id for c in cut.cells}
    removed_axes = sorted(
        (a["strategy"], a["seed"], a["training.start"])
        for c in full.cells if c.id in removed for a in [c.axes])
    assert removed_axes == [("margin", 1, "warm"), ("random", 0, "cold"), ("random", 1, "cold")]
    assert {c.id for c in cut.cells} <= {c.id for c in full.cells}
    assert len(cut.cells) == 9


def test_exclude_does_not_remove_included_cells(tmp_path: Path) -> None:
    suite = suite_of(tmp_path, BASE + "matrix:\n  strategy: [random, entropy]\n"
                     "exclude:\n  - {strategy: random}\n"
                     "include:\n  - {strategy: random, seed: 3}\n")
    assert sorted((c.config.strategy, c.config.seed) for c in suite.cells) == [
        ("entropy", 0), ("random", 3)]


def test_exclude_matches_values_left_at_their_default(tmp_path: Path) -> None:
    suite = suite_of(tmp_path, BASE + "matrix:\n  strategy: [random, entropy]\n"
                     "  training: [{start: cold}, {epochs: 50}]\n"
                     "exclude:\n  - {strategy: random, training: {start: warm}}\n")
    assert len(suite.cells) == 3
    assert not any(c.config.strategy == "random" and c.config.training.start == "warm"
                   for c in suite.cells)


def test_dotted_matrix_key(tmp_path: Path) -> None:
    suite = suite_of(tmp_path, BASE + "matrix:\n  strategy: [random]\n"
                     "  training.start: [warm, cold]\n")
    starts = sorted(c.config.training.start for c in suite.cells)
    assert starts == ["cold", "warm"]
    for cell in suite.cells:
        # the dotted key sets one leaf; its siblings come from defaults
        assert cell.config.training.epochs == 3
        assert cell.config.training.optimizer.lr == 0.05


def test_dict_valued_axis_merges_into_defaults(tmp_path: Path) -> None:
    suite = suite_of(tmp_path, BASE + "matrix:\n  strategy: [random]\n"
                     "  training:\n"
                     "    - {epochs: 5}\n"
                     "    - {optimizer: {lr: 0.01}}\n"
                     "    - {optimizer: {name: adam}, start: cold}\n")
    assert len(suite.cells) == 3
    configs = [c.config.training for c in suite.cells]
    assert [(t.epochs, t.optimizer.name, t.optimizer.lr, t.start) for t in configs] == [
        (5, "sgd", 0.05, "warm"),
        (3, "sgd", 0.01, "warm"),
        (3, "adam", 0.05, "cold"),
    ]


def test_dict_valued_dotted_axis_merges_into_defaults(tmp_path: Path) -> None:
    suite = suite_of(tmp_path, BASE.replace("{name: sgd, lr: 0.05}",
                                            "{name: sgd, lr: 0.05, momentum: 0.5}")
                     + "matrix:\n  strategy: [random]\n"
                     "  training.optimizer: [{lr: 0.5}, {name: adam}]\n")
    optims = [c.config.training.optimizer for c in suite.cells]
    assert [(o.name, o.lr, o.momentum) for o in optims] == [("sgd", 0.5, 0.5),
                                                            ("adam", 0.05, 0.5)]


def test_dict_valued_axis_without_defaults(tmp_path: Path) -> None:
    suite = suite_of(tmp_path, "matrix:\n  strategy: [random]\n  dataset: [digits]\n"
                     "  backbone: [small_cnn]\n"
                     "  budget: [{initial: 10, query: 5, rounds: 2}]\n")
    assert suite.cells[0].config.budget.total == 20


def test_duplicate_cells_collapse(tmp_path: Path) -> None:
    suite = suite_of(tmp_path, BASE + "matrix:\n  strategy: [random, entropy]\n"
                     "  seed: [0]\n"
                     "include:\n  - {strategy: entropy}\n  - {strategy: entropy, seed: 0}\n")
    assert len(suite.cells) == 2
    assert len({c.id for c in suite.cells}) == 2
    # the first occurrence (from the matrix) is kept
    assert [c.axes for c in suite.cells] == [{"strategy": "random", "seed": 0},
                                             {"strategy": "entropy", "seed": 0}]


def test_spelled_out_default_collapses_with_implicit(tmp_path: Path) -> None:
    suite = suite_of(tmp_path, BASE + "matrix:\n  strategy: [random]\n"
                     "  initial_strategy: [null, random]\n")
    assert len(suite.cells) == 1
    suite = suite_of(tmp_path, BASE + "matrix:\n  strategy: [random, hclc]\n"
                     "include:\n  - {strategy: random, initial_strategy: random}\n"
                     "  - {strategy: hclc, initial_strategy: high_confidence, seed: 0}\n",
                     "b.yaml")
    assert len(suite.cells) == 2


def test_suite_name_defaults_to_stem(tmp_path: Path) -> None:
    suite = suite_of(tmp_path, BASE + "matrix:\n  strategy: [random]\n", "my-suite.yaml")
    assert suite.name == "my-suite"
    named = suite_of(tmp_path, "name: other\ndescription: hi\n" + BASE
                     + "matrix:\n  strategy: [random]\n", "x.yaml")
    assert (named.name, named.description) == ("other", "hi")


# --------------------------------------------------------------------------- cell ids


QUICK = """\
name: q
defaults:
  dataset: digits
  backbone: small_cnn
  budget: {initial: 20, query: 20, rounds: 8}
  training:
    epochs: 30
    batch_size: 32
    optimizer: {name: sgd, lr: 0.05, momentum: 0.9, weight_decay: 5.0e-4}
    augmentation: standard
matrix:
  strategy: [random, entropy, hclc]
  seed: [0, 1, 2]
"""

QUICK_REORDERED = """\
matrix:
  seed: [2, 0, 1]
  strategy: [hclc, random, entropy]
defaults:
  training:
    augmentation: standard
    optimizer: {weight_decay: 0.0005, lr: 0.05, name: sgd, momentum: 0.9}
    batch_size: 32
    epochs: 30
  budget: {rounds: 8, query: 20, initial: 20}
  backbone: small_cnn
  dataset: digits
name: q
"""


# QUICK with every default written out
QUICK_EXPLICIT = """\
name: q
description: ""
defaults:
  dataset: digits
  backbone: small_cnn
  initial_strategy: null
  seed: 0
  budget: {initial: 20, query: 20, rounds: 8}
  training:
    epochs: 30
    batch_size: 32
    optimizer: {name: sgd, lr: 0.05, momentum: 0.9, weight_decay: 5.0e-4, nesterov: false}
    schedule: {name: constant, milestones: [], gamma: 0.1}
    augmentation: standard
    start: warm
matrix:
  strategy: [random, entropy, hclc]
  seed: [0, 1, 2]
include: []
exclude: []
"""


def test_ids_are_16_hex_chars(tmp_path: Path) -> None:
    for cell in suite_of(tmp_path, QUICK).cells:
        assert re.fullmatch(r"[0-9a-f]{16}", cell.id), cell.id


def test_ids_ignore_ordering(tmp_path: Path) -> None:
    a = ids_by(suite_of(tmp_path, QUICK, "a.yaml"), "strategy", "seed")
    b = ids_by(suite_of(tmp_path, QUICK_REORDERED, "b.yaml"), "strategy", "seed")
    assert len(a) == 9
    assert a == b


def test_ids_ignore_file_name_and_suite_name(tmp_path: Path) -> None:
    a = ids_by(suite_of(tmp_path, QUICK, "a.yaml"), "strategy", "seed")
    b = ids_by(suite_of(tmp_path, QUICK.replace("name: q", "name: zz\ndescription: x"),
                        "b.yaml"), "strategy", "seed")
    assert a == b


def test_ids_equal_for_spelled_out_defaults(tmp_path: Path) -> None:
    a = ids_by(suite_of(tmp_path, QUICK, "a.yaml"), "strategy", "seed")
    b = ids_by(suite_of(tmp_path, QUICK_EXPLICIT, "b.yaml"), "strategy", "seed")
    assert len(a) == 9
    assert a == b


def test_ids_equal_for_explicit_resolved_initial_strategy(tmp_path: Path) -> None:
    implicit = single_id(tmp_path, BASE + "matrix:\n  strategy: [entropy]\n", "a.yaml")
    explicit = single_id(tmp_path, BASE + "  initial_strategy: random\n"
                         "matrix:\n  strategy: [entropy]\n", "b.yaml")
    assert implicit == explicit
    other = single_id(tmp_path, BASE + "  initial_strategy: high_confidence\n"
                      "matrix:\n  strategy: [entropy]\n", "c.yaml")
    assert other != implicit


def test_ids_equal_for_every_way_to_set_a_value(tmp_path: Path) -> None:
    ways = [
        BASE.replace("epochs: 3", "epochs: 3\n    start: cold") + "matrix:\n  strategy: [random]\n",
        BASE + "matrix:\n  strategy: [random]\n  training.start: [cold]\n",
        BASE + "matrix:\n  strategy: [random]\n  training: [{start: cold}]\n",
        BASE + "include:\n  - {strategy: random, training.start: cold}\n"
        "matrix:\n  strategy: [random]\nexclude:\n  - {strategy: random}\n",
    ]
    ids = {single_id(tmp_path, text, f"w{i}.yaml") for i, text in enumerate(ways)}
    assert len(ids) == 1


def test_ids_equal_for_int_and_float_spelling(tmp_path: Path) -> None:
    a = single_id(tmp_path, BASE.replace("lr: 0.05", "lr: 1, weight_decay: 0")
                  + "matrix:\n  strategy: [random]\n", "a.yaml")
    b = single_id(tmp_path, BASE.replace("lr: 0.05", "lr: 1.0, weight_decay: 0.0")
                  + "matrix:\n  strategy: [random]\n", "b.yaml")
    assert a == b


def test_dotted_key_in_defaults_equals_nested(tmp_path: Path) -> None:
    nested = single_id(tmp_path, BASE.replace("lr: 0.05", "lr: 0.01")
                       + "matrix:\n  strategy: [random]\n", "a.yaml")
    dotted = single_id(tmp_path, BASE + "  training.optimizer.lr: 0.01\n"
                       "matrix:\n  strategy: [random]\n", "b.yaml")
    assert nested == dotted


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("lr: 0.05", "lr: 0.01"),
        ("epochs: 3", "epochs: 4"),
        ("epochs: 3", "epochs: 3\n    batch_size: 64"),
        ("epochs: 3", "epochs: 3\n    start: cold"),
        ("epochs: 3", "epochs: 3\n    augmentation: none"),
        ("epochs: 3", "epochs: 3\n    schedule: {name: cosine}"),
        ("name: sgd", "name: adam"),
        ("lr: 0.05", "lr: 0.05, momentum: 0.8"),
        ("lr: 0.05", "lr: 0.05, nesterov: true"),
        ("query: 20", "query: 21"),
        ("rounds: 8", "rounds: 7"),
        ("initial: 20", "initial: 19"),
        ("backbone: small_cnn", "backbone: small_cnn\n  seed: 1"),
        ("backbone: small_cnn", "backbone: small_cnn\n  initial_strategy: least_confidence"),
        ("dataset: digits", "dataset: mnist"),
    ],
)
def test_ids_change_with_any_setting(tmp_path: Path, old: str, new: str) -> None:
    assert old in BASE
    body = "matrix:\n  strategy: [entropy]\n"
    base_id = single_id(tmp_path, BASE + body, "a.yaml")
    changed_id = single_id(tmp_path, BASE.replace(old, new) + body, "b.yaml")
    assert changed_id != base_id


def test_ids_change_with_strategy_and_seed(tmp_path: Path) -> None:
    suite = suite_of(tmp_path, QUICK)
    assert len({c.id for c in suite.cells}) == len(suite.cells) == 9


def test_budgets_in_percent_of_the_pool_resolve_to_counts(tmp_path: Path) -> None:
    percent = suite_of(tmp_path, BASE.replace("{initial: 20, query: 20, rounds: 8}",
                                              "{initial: '1%', query: '0.5%', rounds: 3}")
                       + "matrix:\n  strategy: [random]\n")
    [cell] = percent.cells
    assert (cell.config.budget.initial, cell.config.budget.query) == (13, 7)  # of 1,347 pool images
    (tmp_path / "counts").mkdir()
    counts = suite_of(tmp_path / "counts", BASE.replace("{initial: 20, query: 20, rounds: 8}",
                                                         "{initial: 13, query: 7, rounds: 3}")
                      + "matrix:\n  strategy: [random]\n")
    assert counts.cells[0].id == cell.id  # the same protocol, the same id


@pytest.mark.parametrize("bad", ["'0%'", "'150%'", "'ten%'", "'5'", "-3"])
def test_bad_budget_counts_and_percentages_are_rejected(tmp_path: Path, bad: str) -> None:
    path = write_suite(tmp_path, BASE.replace("initial: 20", f"initial: {bad}") + "matrix:\n  strategy: [random]\n")
    msg = error_of(path)
    assert "budget.initial" in msg and "percentage" in msg
