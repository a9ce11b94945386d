"""alb report: metrics, tables, escaping, files written, and the pages rendering in a real browser."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_suite

from benchmark import cli
from benchmark.report.metrics import aubc, efficiency_targets, label_efficiency, labels_to_reach
from benchmark.report.render import latex_escape, markdown_escape, to_latex, to_markdown
from benchmark.report.tables import Table

PAYLOAD = '<script>window.pwned=1</script>&"|_'

ABLATION_SUITE = """\
name: ablation
defaults:
  dataset: digits
  backbone: small_cnn
  budget: {initial: 10, query: 10, rounds: 2}
  training: {epochs: 2, batch_size: 16}
matrix:
  strategy: [random, margin]
  training.start: [warm, cold]
  seed: [0, 1]
"""


def test_aubc_is_the_mean_accuracy_over_the_budget() -> None:
    n = np.array([10, 20, 40])
    acc = np.array([0.5, 0.7, 0.9])
    # trapezoids: 10 * 0.6 + 20 * 0.8 = 22 over a range of 30
    assert aubc(n, acc) == pytest.approx(22 / 30)
    assert aubc(n[::-1], acc[::-1]) == pytest.approx(22 / 30)  # order does not matter
    assert aubc(np.array([5]), np.array([0.4])) == pytest.approx(0.4)


def test_labels_to_reach_interpolates_between_rounds() -> None:
    n, acc = np.array([10, 20, 30]), np.array([0.5, 0.7, 0.9])
    assert labels_to_reach(n, acc, 0.8) == pytest.approx(25)
    assert labels_to_reach(n, acc, 0.4) == pytest.approx(10)
    assert np.isnan(labels_to_reach(n, acc, 0.95))
    # non-monotone curves: the first crossing counts
    assert labels_to_reach(np.array([10, 20, 30]), np.array([0.5, 0.9, 0.6]), 0.7) == pytest.approx(15)


def test_label_efficiency_is_the_ratio_of_labels_needed() -> None:
    random = (np.array([10, 20, 30, 40]), np.array([0.5, 0.6, 0.7, 0.8]))
    twice_as_fast = (np.array([5, 10, 15, 20]), np.array([0.5, 0.6, 0.7, 0.8]))
    targets = efficiency_targets([random, twice_as_fast])
    assert label_efficiency(random, twice_as_fast, targets) == pytest.approx(np.full(len(targets), 2.0))
    assert label_efficiency(random, random, targets) == pytest.approx(np.ones(len(targets)))


def test_markdown_and_latex_escape_untrusted_names() -> None:
    table = Table("t", ["strategy", "x"], [[PAYLOAD, "1"]], notes=["a_b"])
    md = to_markdown([table], "h")
    assert "<script>" not in md and "&lt;script&gt;" in md and "\\|" in md
    tex = to_latex([table])
    assert "\\_" in tex and "\\&" in tex and "\\toprule" in tex and "\\bottomrule" in tex
    assert markdown_escape("a|b") == "a\\|b" and latex_escape("50%") == "50\\%"


def _doctor_strategy_name(results: Path, new_name: str) -> None:
    path = next(results.rglob("*.parquet"))
    table = pq.read_table(path)
    i = table.schema.get_field_index("strategy")
    column = pa.array([new_name] * table.num_rows)
    pq.write_table(table.set_column(i, "strategy", column), path)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    suite = write_suite(root, "ablation", ABLATION_SUITE)
    results = root / "results"
    assert cli.main(["run", str(suite), "--results", str(results)]) == 0
    _doctor_strategy_name(results, PAYLOAD)
    out = root / "reports"
    assert cli.main(["report", str(results), "--out", str(out)]) == 0
    return out


def test_report_writes_every_page_format_and_figure(report_dir: Path) -> None:
    for name in ("index.html", "leaderboard.html", "tables.html", "curves.html", "differences.html",
                 "efficiency.html", "published.html", "tables.md", "tables.tex", "leaderboard.md",
                 "leaderboard.tex"):
        assert (report_dir / name).is_file(), name
    figures = sorted(p.name for p in (report_dir / "figures").iterdir())
    assert sum(f.startswith("curves-") and f.endswith(".png") for f in figures) == 2  # warm, cold
    assert sum(f.startswith("curves-") and f.endswith(".svg") for f in figures) == 2
    assert any(f.startswith("diff-training.start-warm") for f in figures)  # warm minus cold
    assert any(f.startswith("efficiency-") for f in figures)
    board = (report_dir / "leaderboard.md").read_text()
    assert "protocol differs" in board and "training.start" in board  # warm and cold ranked apart
    for page in ("leaderboard.html", "tables.html", "index.html"):
        assert "<script>window.pwned" not in (report_dir / page).read_text()
    assert "&lt;script&gt;" in (report_dir / "leaderboard.html").read_text()


def test_report_without_results_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == cli.EXIT_USAGE
    assert "result folder(s) not found" in capsys.readouterr().err


def _browser() -> object:
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser test: .ci/run installs chromium and chromium-driver")
        pytest.skip("Debian packages chromium and chromium-driver are not installed (.ci/run installs them)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=options)


def test_report_pages_render_in_headless_chromium_with_all_images(report_dir: Path) -> None:
    driver = _browser()
    try:
        driver.get((report_dir / "index.html").as_uri())
        assert driver.title == "alb report · alb report"
        links = [a.get_attribute("href") for a in driver.find_elements("css selector", "nav a")]
        assert len(links) == 8  # index, leaderboard, tables, curves, differences, efficiency, time, published
        images_seen = 0
        for link in links:
            driver.get(link)
            assert driver.find_element("css selector", "h1").text, link
            broken = driver.execute_script(
                "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
            assert broken == [], broken
            images_seen += driver.execute_script("return document.images.length")
            assert driver.execute_script("return window.pwned === undefined"), "injected script ran"
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert errors == [], errors
        assert images_seen >= 5
        driver.get((report_dir / "leaderboard.html").as_uri())
        assert PAYLOAD in driver.find_element("css selector", "body").text  # shown as text, in one of the boards
    finally:
        driver.quit()


def test_init_differences_ignore_the_pretraining_settings_only_self_supervised_inits_have() -> None:
    import pandas as pd

    from benchmark.report.frame import Protocol
    from benchmark.report.plots import _difference_groups

    def protocol(init: str, semi: str) -> Protocol:
        epochs = None if init == "scratch" else 20
        return Protocol((("init", init), ("pretraining.epochs", epochs), ("training.semi", semi)))

    protocols = [protocol(i, s) for i in ("scratch", "simsiam", "rotation") for s in ("none", "label_propagation")]
    groups = _difference_groups(pd.DataFrame({"protocol": protocols}))
    by_key: dict[str, list[set[str]]] = {}
    for key, members in groups:
        by_key.setdefault(key, []).append({str(p.get(key)) for p in members})
    # scratch is compared with every pre-training, once per semi value
    assert by_key["init"] == [{"scratch", "simsiam", "rotation"}] * 2
    assert len(by_key["training.semi"]) == 3 and "pretraining.epochs" not in by_key
