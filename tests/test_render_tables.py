"""Markdown and LaTeX table writers (tabulate underneath): untrusted cells are escaped before tabulate sees
them, the structure survives hostile strings, and LaTeX tables use booktabs rules."""

from __future__ import annotations

import re

from benchmark.report.render import to_latex, to_markdown
from benchmark.report.tables import Table

HOSTILE = Table("T_1 & co", ["strategy", "AUBC", "vs best"],
                [["a|b_c", "87.4 ± 1.8", "≈best"], ["x\\y%$#{}~^", "–", "<script>x</script>"],
                 ["two\nlines", "*bold*", "`code`"]], notes=["n_1 | note"])


def _cells(line: str) -> list[str]:
    """Split a pipe-table line on its unescaped pipes."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]


def test_markdown_rows_keep_their_columns_whatever_the_cells_hold() -> None:
    text = to_markdown([HOSTILE], "Board")
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(HOSTILE.rows)  # header, rule, rows: the newline cell stayed on one line
    assert all(len(_cells(line)) == 3 for line in table)
    assert _cells(table[2])[0] == r"a\|b\_c"
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert r"\*bold\*" in text and r"\`code\`" in text


def test_latex_is_booktabs_with_every_special_escaped() -> None:
    text = to_latex([HOSTILE, HOSTILE])
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert text.count(rule) == 2
    assert r"\hline" not in text
    body = text[text.index(r"\midrule"):text.index(r"\bottomrule")]
    rows = [line for line in body.splitlines() if line.endswith(r"\\")]
    assert len(rows) == len(HOSTILE.rows)
    assert all(len(re.split(r"(?<!\\)&", row)) == 3 for row in rows)
    assert r"x\textbackslash{}y\%\$\#\{\}\textasciitilde{}\textasciicircum{}" in text
    assert r"87.4 $\pm$ 1.8" in text and r"$\approx$best" in text
    assert r"\begin{tabular}{lrr}" in text
