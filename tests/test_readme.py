"""The README stays true: its example suite is valid and its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import REPO

from benchmark.cli import build_parser
from benchmark.suite import load_suite

README = (REPO / "README.md").read_text()


def test_readme_example_suite_is_valid(tmp_path: Path) -> None:
    block = re.search(r"## Suite files\n\n```yaml\n(.*?)```", README, re.S)
    assert block is not None
    path = tmp_path / "example.yaml"
    path.write_text(block.group(1))
    suite = load_suite(path)
    # 6 strategies x 3 seeds, minus the excluded cell, plus the lchc include
    assert len(suite.cells) == 18 - 1 + 1
    assert any(c.config.strategy == "lchc" and c.config.seed == 7 for c in suite.cells)
    assert all(c.config.pool_subset == 500 for c in suite.cells if c.config.strategy == "entropy")


def test_readme_quickstart_commands_are_the_ci_commands() -> None:
    assert "pip install -e '.[dev]'" in README and "alb run suites/quickstart.yaml" in README
    ci = (REPO / ".ci" / "run").read_text()
    assert "pip install --quiet -e '.[dev]'" in ci and "\npytest\n" in ci


def test_every_subcommand_in_the_readme_exists() -> None:
    parser = build_parser()
    code = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", README, re.S))
    commands = set(re.findall(r"^alb (\w+)", code, re.M))
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert commands and commands <= set(subparsers.choices)


def test_write_your_own_strategy_shows_the_example_plugin_verbatim() -> None:
    """Issue 17: the README's plugin code is tests/plugin_example's (which tests/test_plugins.py installs and runs)."""
    import re

    section = README[README.index("## Write your own strategy"):README.index("## Tests")]
    blocks = re.findall(r"```(?:python|toml)\n(.*?)```", section, flags=re.S)
    example = REPO / "tests" / "plugin_example"
    sources = {p.name: p.read_text() for p in [*example.glob("alb_example_plugin/*.py"), example / "pyproject.toml"]}
    assert len(blocks) == 3
    for block in blocks:
        assert any(block.strip() in text for text in sources.values()), block[:80]
