"""Issue 17, plugins: strategies, backbones and datasets from other packages, through entry points or a
suite's ``module.path:Attribute``, validated when the suite loads, identified in cell ids and rows.

The example plugin (tests/plugin_example, the README's "Write your own strategy") is installed with pip into a
temporary folder, never the checkout, and used by real ``alb`` processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, alb_command, alb_env, write_suite

from benchmark import plugins
from benchmark.config import CellConfig
from benchmark.data import DATASETS
from benchmark.errors import ConfigError
from benchmark.models import BACKBONES
from benchmark.strategies import STRATEGIES

EXAMPLE = REPO / "tests" / "plugin_example"
REGISTRIES = (STRATEGIES, BACKBONES, DATASETS)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin pip-installed into a temporary target folder (built from a copy: a build writes
    egg-info next to its sources)."""
    work = tmp_path_factory.mktemp("plugin")
    source = work / "source"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    target = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(source)], check=True, capture_output=True,
                   timeout=300)
    return target


@pytest.fixture
def fresh_registries() -> Iterator[None]:
    """Registries that discover plugins again, restored afterwards (plugins found here stay out of other tests)."""
    saved = [(r._entries.copy(), r._problems.copy(), r._discovered) for r in REGISTRIES]
    for registry in REGISTRIES:
        registry._discovered = False
        registry._problems.clear()
    plugins.package_sha256.cache_clear()
    imported = {name: sys.modules.pop(name) for name in list(sys.modules) if name.startswith("alb_example_plugin")}
    yield
    for name in [n for n in sys.modules if n.startswith("alb_example_plugin")]:
        del sys.modules[name]
    sys.modules.update(imported)
    for registry, (entries, problems, discovered) in zip(REGISTRIES, saved, strict=True):
        registry._entries, registry._problems, registry._discovered = entries, problems, discovered
    plugins.package_sha256.cache_clear()


@pytest.fixture
def on_path(installed: Path, monkeypatch: pytest.MonkeyPatch, fresh_registries: None) -> Path:
    monkeypatch.syspath_prepend(str(installed))
    return installed


def _env(*paths: Path) -> dict[str, str]:
    env = alb_env()
    env["PYTHONPATH"] = os.pathsep.join([*(str(p) for p in paths), env["PYTHONPATH"]])
    return env


def _alb(*args: str, paths: tuple[Path, ...] = (), cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(alb_command(*args), cwd=cwd, env=_env(*paths), capture_output=True, text=True,
                          timeout=600, check=False)


PLUGIN_SUITE = """\
    name: plugged
    defaults:
      dataset: digits_inverted
      backbone: example_mlp
      budget: {initial: 20, query: 20, rounds: 2}
      training: {epochs: 3, batch_size: 32}
    matrix:
      strategy: [top2_ratio, "alb_example_plugin.strategy:Top2Ratio", margin]
      seed: [0]
    """


def test_entry_points_register_the_three_components_with_their_origin(on_path: Path) -> None:
    for registry, name in ((STRATEGIES, "top2_ratio"), (BACKBONES, "example_mlp"), (DATASETS, "digits_inverted")):
        assert name in registry.names()
        origin = registry.entry(name).origin
        assert origin is not None and origin.distribution == "alb-example-plugin" and origin.version == "0.1.0"
        assert len(origin.sha256) == 64
    assert STRATEGIES.entry("margin").origin is None  # alb's own follow the same contract, without an origin
    assert "torch" not in STRATEGIES.entry("top2_ratio").module  # declarations are cheap to import


def test_a_plugin_run_end_to_end_with_identity_in_rows_and_list(installed: Path, tmp_path: Path) -> None:
    suite = write_suite(tmp_path, "plugged", PLUGIN_SUITE)
    results = tmp_path / "results"
    done = _alb("run", str(suite), "--results", str(results), "--quiet", "--workers", "1", paths=(installed,))
    assert done.returncode == 0, done.stderr + done.stdout
    frame_text = subprocess.run(
        [sys.executable, "-c", "from benchmark.store import load_results; import sys; f = load_results(sys.argv[1]);"
         "print(sorted(set(f['plugin.strategy'].fillna('alb')))); print(sorted(set(f['plugin.backbone'])));"
         "print(f.groupby('strategy')['accuracy'].last().round(3).to_dict())", str(results / "plugged")],
        env=_env(installed), capture_output=True, text=True, check=True).stdout
    assert "alb-example-plugin==0.1.0 sha256:" in frame_text and "'alb'" in frame_text
    # cached cells, status and listing never import torch: the declarations are all alb reads
    script = ("import sys\nfrom benchmark import cli\n"
              f"assert cli.main(['run', {str(suite)!r}, '--results', {str(results)!r}]) == 0\n"
              f"assert cli.main(['status', {str(suite)!r}, '--results', {str(results)!r}]) == 0\n"
              "assert cli.main(['list', 'backbones']) == 0\n"
              "print('HEAVY', sorted(m for m in ('torch', 'torchvision') if m in sys.modules))\n")
    light = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=_env(installed), capture_output=True,
                           text=True, timeout=300, check=True).stdout
    assert "HEAVY []" in light and "example_mlp" in light
    bundle = tmp_path / "plugged.tar.gz"
    bundled = _alb("bundle", str(suite), "--results", str(results), "--out", str(bundle), paths=(installed,))
    assert bundled.returncode == 0, bundled.stderr
    import json
    import tarfile

    with tarfile.open(bundle) as archive:
        member = archive.extractfile("manifest.json")
        assert member is not None
        manifest = json.load(member)
    identities = {(p["kind"], p["name"]): p for p in manifest["plugins"]}
    assert set(identities) == {("strategy", "top2_ratio"), ("strategy", "alb_example_plugin.strategy:Top2Ratio"),
                               ("backbone", "example_mlp"), ("dataset", "digits_inverted")}
    assert identities["backbone", "example_mlp"]["distribution"] == "alb-example-plugin"
    verified = _alb("verify", str(bundle), paths=(installed,))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    listed = _alb("list", "strategies", "--details", paths=(installed,))
    assert listed.returncode == 0 and "top2_ratio" in listed.stdout and "alb-example-plugin 0.1.0" in listed.stdout
    # without the plugin on the path, the suite is refused with one message, no traceback
    refused = _alb("run", str(suite), "--results", str(results), "--dry-run")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "unknown dataset 'digits_inverted'" in refused.stderr and "alb.datasets" in refused.stderr


def test_editing_a_plugin_changes_its_cells_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  fresh_registries: None) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(EXAMPLE / "alb_example_plugin", copy / "alb_example_plugin")
    monkeypatch.syspath_prepend(str(copy))
    cell = {"dataset": "digits", "backbone": "small_cnn", "strategy": "alb_example_plugin.strategy:Top2Ratio",
            "budget": {"initial": 10, "query": 10, "rounds": 1}}
    before = CellConfig.model_validate(cell).cell_id()
    source = copy / "alb_example_plugin" / "strategy.py"
    source.write_text(source.read_text().replace("1e-12", "1e-9"))
    plugins.package_sha256.cache_clear()  # a new process
    assert CellConfig.model_validate(cell).cell_id() != before


def _module(tmp_path: Path, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))


@pytest.mark.parametrize(("reference", "body", "expected"), [
    ("nowhere_pkg.mod:Thing", None, "cannot import module 'nowhere_pkg.mod'"),
    ("bad_plugin_a:Missing", "X = 1\n", "has no attribute 'Missing'"),
    ("bad_plugin_b:NotAStrategy", """\
        from benchmark.registry import StrategyInfo
        class NotAStrategy:
            alb_info = StrategyInfo("plain", ("probs",))
        """, "not a subclass of benchmark.strategies.base.Strategy"),
    ("bad_plugin_c:NoSelect", """\
        from benchmark.registry import StrategyInfo
        from benchmark.strategies.base import Strategy
        class NoSelect(Strategy):
            alb_info = StrategyInfo("plain", ("probs",))
        """, "does not define select(ctx, budget)"),
    ("bad_plugin_d:WrongNeeds", """\
        from benchmark.registry import StrategyInfo
        from benchmark.strategies.base import Strategy
        class WrongNeeds(Strategy):
            alb_info = StrategyInfo("plain", ("probabilities",))
            def select(self, ctx, budget):
                return ctx.unlabeled[:budget]
        """, "needs ['probabilities'] unknown; allowed: discriminator, embeddings"),
    ("bad_plugin_e:NoFacts", "class NoFacts:\n    pass\n", "neither a benchmark.plugins.Declaration nor"),
])
def test_a_broken_plugin_is_one_clear_error_when_the_suite_loads(tmp_path: Path, reference: str, body: str | None,
                                                                  expected: str) -> None:
    if body is not None:
        _module(tmp_path, reference.partition(":")[0], body)
    suite = write_suite(tmp_path, "broken", f"""\
        name: broken
        defaults:
          dataset: digits
          backbone: small_cnn
          budget: {{initial: 10, query: 10, rounds: 1}}
        matrix:
          strategy: ["{reference}"]
        """)
    result = _alb("run", str(suite), "--results", str(tmp_path / "r"), paths=(tmp_path,))
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert reference.split(":")[0] in result.stderr
    assert not (tmp_path / "r" / "cells").exists() or not list((tmp_path / "r" / "cells").glob("*.parquet"))


def test_a_plugin_cannot_take_the_name_of_alb_s_own(fresh_registries: None) -> None:
    declaration = plugins.Declaration("x.y:Z", "clash", STRATEGIES.info("margin"))
    STRATEGIES._add_plugin("margin", lambda: (declaration, plugins.Origin("clash-dist", "1.0", "x")))
    assert STRATEGIES.entry("margin").origin is None
    assert "its name is taken by benchmark.strategies.uncertainty:MarginSampling" in STRATEGIES.problems()["margin"]


def test_facts_problem_checks_kind_and_version() -> None:
    from benchmark.registry import BackboneInfo, StrategyInfo

    wrong_kind = plugins.Declaration("a.b:C", "", BackboneInfo(4))
    assert "a strategy declares a benchmark.registry.StrategyInfo" in str(plugins.facts_problem("strategy", wrong_kind))
    zero = plugins.Declaration("a.b:C", "", StrategyInfo("plain", version=0))
    assert "version must be a positive int" in str(plugins.facts_problem("strategy", zero))
    segmentation = plugins.Declaration("a.b:C", "", StrategyInfo("plain", tasks=("segmentation",)))  # type: ignore[arg-type]
    assert "are not among classification, detection" in str(plugins.facts_problem("strategy", segmentation))
    with pytest.raises(ConfigError, match="cannot be found"):
        plugins.package_sha256("no_such_package_anywhere")
