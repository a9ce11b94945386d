"""The transcribed paper numbers (benchmark/published/seed*.yaml) and the paper suites (suites/*.yaml)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from benchmark.data import DATASETS
from benchmark.errors import ConfigError
from benchmark.models import BACKBONES
from benchmark.published import PUBLISHED_DIR, PublishedNumber, all_numbers, load_published, resolve_references
from benchmark.strategies import STRATEGIES
from benchmark.suite import load_suite

REPO = Path(__file__).resolve().parents[1]
SEEDS_DIR = Path(__file__).resolve().parents[2] / "shared" / "seeds"
SUITES_DIR = REPO / "suites"

PAPERS = ["seed000", "seed001", "seed002", "seed003", "seed004"]
REQUIRED_TABLES = [
    "seed000/cifar10", "seed000/cifar100", "seed000/svhn", "seed000/tiny_imagenet", "seed000/hybrid",
    "seed000/imbalance", "seed000/detection",
    "seed001/table2",
    "seed002/table3", "seed002/table4", "seed002/table5", "seed002/table6",
    "seed003/table1",
    "seed004/table2", "seed004/table3",
]
PAPER_SUITES = ["cifar10", "seed000_cifar10_confidence", "seed000_hybrid", "seed000_time_saved",
                "seed002_cifar10_high_budget", "warm_vs_cold", "augmentation"]
# names a paper uses that alb neither implements nor plans (see benchmark/published/__init__.py)
EXTRA_NAMES = {
    "dataset": {"cdd"},
    "backbone": set(),
    "strategy": {"full"},
}

PRINTED = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:(?:±|\+-|\\pm)\s*(\d+(?:\.\d+)?))?\s*$")


def parse_printed(printed: str) -> tuple[float, float | None]:
    match = PRINTED.match(printed)
    assert match, f"cannot parse printed value {printed!r}"
    std = match.group(2)
    return float(match.group(1)), (float(std) if std is not None else None)


def by_id() -> dict[str, PublishedNumber]:
    return {n.id: n for n in all_numbers()}


def test_every_file_validates_and_names_its_paper() -> None:
    files = load_published(PUBLISHED_DIR)
    assert [f.paper.key for f in files] == PAPERS
    for f in files:
        assert f.entries, f.paper.key
        assert f.paper.source_file.startswith(f.paper.key.removeprefix("seed") + "_")
        assert all(n.table_id.startswith(f.paper.key + "/") for n in f.entries)
        assert all(n.id.startswith(f.paper.key + "-") for n in f.entries)
    # seed 000's tables carry no captions: the file must say how they were read
    assert next(f for f in files if f.paper.key == "seed000").paper.readings


def test_ids_are_unique() -> None:
    counts = Counter(n.id for n in all_numbers())
    assert not [i for i, c in counts.items() if c > 1]


def test_required_tables_are_present() -> None:
    present = {n.table_id for n in all_numbers()}
    assert not [t for t in REQUIRED_TABLES if t not in present]


def test_printed_parses_to_mean_and_std() -> None:
    for n in all_numbers():
        if n.metric == "accuracy_range":  # 'start-mid-end', spaces of the extraction dropped
            assert n.start_mid_end == tuple(float(v) for v in n.printed.replace(" ", "").split("-")), n.id
            continue
        mean, std = parse_printed(n.printed)
        assert n.mean == pytest.approx(mean), n.id
        assert n.std == (pytest.approx(std) if std is not None else None), n.id


def test_units_and_metrics_agree() -> None:
    for n in all_numbers():
        if n.metric == "accuracy_range":
            assert n.unit == "percent" and n.start_mid_end and all(0 <= v <= 100 for v in n.start_mid_end), n.id
        elif n.metric in ("accuracy", "map"):
            assert n.unit in ("percent", "fraction"), n.id
            fraction = n.as_fraction()
            assert fraction is not None and 0 <= fraction <= 1, n.id
        elif n.metric in ("time_saved_hours", "annotation_hours"):
            assert n.unit == "hours", n.id
        else:
            assert n.unit == "seconds", n.id


def test_names_are_alb_vocabulary() -> None:
    known = {
        "dataset": set(DATASETS.names()),
        "backbone": set(BACKBONES.names()),
        "strategy": set(STRATEGIES.names()),
    }
    for n in all_numbers():
        for field, names in known.items():
            value = getattr(n, field)
            assert value in names | EXTRA_NAMES[field], f"{n.id}: unknown {field} '{value}'"
        if n.setting.get("initial_strategy") is not None:
            assert n.setting["initial_strategy"] in STRATEGIES, n.id


def test_final_round_entries_explain_themselves() -> None:
    for n in all_numbers():
        if n.n_labeled is None:
            assert n.note, n.id


def test_printed_text_occurs_in_source_paper() -> None:
    if not SEEDS_DIR.is_dir():
        pytest.skip(f"source papers not found at {SEEDS_DIR}")
    for f in load_published(PUBLISHED_DIR):
        path = SEEDS_DIR / f.paper.source_file
        assert path.is_file(), path
        text = path.read_text(encoding="utf-8")
        missing = [n.id for n in f.entries if n.printed not in text]
        assert not missing, f"{f.paper.key}: printed text not in {path.name}: {missing[:10]}"


# id -> (mean, std, n_labeled, unit); looked up by id, checked against the papers by hand
SPOT_CHECKS = {
    "seed000-cifar10-resnet18_cifar-least_confidence-final": (93.53, 0.08, None, "percent"),
    "seed000-cifar10-resnet18_cifar-least_confidence-5000": (81.27, 0.12, 5000, "percent"),
    "seed000-cifar10-vgg16_cifar-least_confidence-20000": (84.26, None, 20000, "percent"),
    "seed000-cifar10-mobilenetv2-least_confidence-10000-time_saved": (0.52, None, 10000, "hours"),
    "seed000-cifar100-resnet18_cifar-hclc-final": (73.42, 0.24, None, "percent"),
    "seed000-svhn-resnet18_cifar-least_confidence-15000": (91.80, 0.06, 15000, "percent"),
    "seed000-tiny_imagenet-resnet18_cifar-least_confidence-final-annotation_hours": (29.87, None, None, "hours"),
    "seed000-pascal_voc-ssd_vgg16-hclc-final-map": (78.13, 0.09, None, "percent"),
    "seed000-hybrid-cifar10-mobilenetv2-rlc-final": (95.61, None, None, "percent"),
    "seed000-imbalance-cifar10-vgg16_cifar-hclc-final": (93.85, None, None, "percent"),
    "seed001-table2-cifar10": (92.88, 0.23, 50000, "percent"),
    "seed001-table2-svhn": (95.22, 0.46, 73257, "percent"),
    "seed001-table2-tiny_imagenet": (24.56, 0.98, 100000, "percent"),
    "seed002-t3-cifar10-lplgrad-3000": (72.4, 1.1, 3000, "percent"),
    "seed002-t3-cifar100-learning_loss-20000": (66.0, 0.5, 20000, "percent"),
    "seed002-t3-caltech101-random-3500": (50.8, 1.7, 3500, "percent"),
    "seed002-t4-cifar10-coreset-query": (2319.0, None, None, "seconds"),
    "seed002-t5-caltech101-lplgrad-without_aux-third": (14.9, None, 467, "percent"),
    "seed002-t6-svhn-lplgrad-with_aux-entire": (95.1, None, 10000, "percent"),
    "seed003-t1-cifar10-scratch-entropy": (0.908, None, 25000, "fraction"),
    "seed003-t1-cifar100-simsiam-vaal": (0.648, None, 25000, "fraction"),
    "seed004-t2-cifar10-entropy-baseline-cycle0": (29.17, 1.62, 100, "percent"),
    "seed004-t2-cifar100-jlp-pre_semi-cycle2": (47.03, 0.47, 3000, "percent"),
    "seed004-t3-cifar10_b1000-random-semi-cycle0": (78.85, 0.86, 1000, "percent"),
    "seed004-t3-svhn_b100-jlp-pre_semi-cycle1": (54.88, 22.90, 200, "percent"),
    "seed004-t3-cifar100_b1000-ceal-pre-cycle4": (50.18, 0.60, 5000, "percent"),
}


@pytest.mark.parametrize("entry_id", sorted(SPOT_CHECKS))
def test_spot_check(entry_id: str) -> None:
    numbers = by_id()
    assert entry_id in numbers
    n = numbers[entry_id]
    mean, std, n_labeled, unit = SPOT_CHECKS[entry_id]
    assert n.mean == pytest.approx(mean)
    assert n.std == (pytest.approx(std) if std is not None else None)
    assert n.n_labeled == n_labeled
    assert n.unit == unit


def test_spot_check_settings() -> None:
    numbers = by_id()
    lc = numbers["seed000-cifar10-resnet18_cifar-least_confidence-final"]
    assert (lc.strategy, lc.setting) == ("least_confidence", {"initial_strategy": "least_confidence"})
    hc = numbers["seed000-cifar100-densenet121-high_confidence-final"]
    assert hc.setting["initial_strategy"] == "high_confidence"
    assert numbers["seed000-cifar10-densenet121-hclc-final"].strategy == "hclc"
    assert numbers["seed000-imbalance-cifar10-vgg16_cifar-hclc-final"].setting["view.imbalance"] is True
    full = numbers["seed001-table2-cifar10"]
    assert full.strategy == "full" and full.printed == "92.88 +- 0.23"
    t3 = numbers["seed002-t3-cifar10-entropy-3000"]
    assert t3.setting["pool_subset"] == 25000 and t3.setting["budget.query"] == 1000
    assert numbers["seed002-t5-svhn-lplgrad-without_aux-entire"].setting["training.aux"] == "none"
    assert numbers["seed003-t1-cifar10-simsiam-coreset"].setting["init"] == "simsiam"
    pre_semi = numbers["seed004-t2-cifar10-entropy-pre_semi-cycle0"]
    assert pre_semi.setting["init"] == "deepcluster"
    assert pre_semi.setting["training.semi"] == "label_propagation"
    assert numbers["seed004-t3-svhn_b100-random-baseline-cycle0"].setting["training.semi"] == "none"


def test_entry_counts() -> None:
    counts = Counter(n.table_id for n in all_numbers())
    assert counts["seed001/table2"] == 5
    assert counts["seed002/table3"] == 6 * 12
    assert counts["seed002/table4"] == 5 * 10
    assert counts["seed002/table5"] == counts["seed002/table6"] == 4 * 6
    assert counts["seed003/table1"] == 12
    assert counts["seed004/table2"] == 3 * 4 * 4
    # cycle 0: Random only; cycles 1-4: 5 strategies x 11 columns minus CEAL's 4 dashes
    assert counts["seed004/table3"] == 11 + 4 * (5 * 11 - 4)
    assert counts["seed000/hybrid"] == 20
    assert counts["seed000/tiny_imagenet"] == 9


def test_resolve_table_reference() -> None:
    hits = resolve_references(["seed001/table2"])
    assert len(hits) == 5
    assert {n.dataset for n in hits} == {"cifar10", "svhn", "fashion_mnist", "cifar100", "tiny_imagenet"}
    assert resolve_references(["seed001-table2-cifar10"])[0].mean == pytest.approx(92.88)


def test_bad_reference_suggests_a_name() -> None:
    with pytest.raises(ConfigError, match=r"(?i)did you mean"):
        resolve_references(["seed001/tabel2"])


def suite_files() -> list[Path]:
    return sorted(SUITES_DIR.glob("*.yaml"))


def _user_image_folder(root: Path, spec: str) -> None:
    """A tiny PATH/{train,test}/<class>/ tree for a suite over the user's own images (seed000_dinov2)."""
    from PIL import Image

    for split in ("train", "test"):
        for name in ("a", "b"):
            folder = root / spec / split / name
            folder.mkdir(parents=True)
            for i in range(10):
                Image.new("RGB", (8, 8), (25 * i, 0, 0)).save(folder / f"{i}.png")


@pytest.mark.parametrize("path", suite_files(), ids=lambda p: p.name)
def test_suite_validates(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user_folder = re.search(r"dataset: image_folder:([^:\s]+)", path.read_text())
    if user_folder:  # the suite says where the user puts the images, relative to where alb runs
        _user_image_folder(tmp_path, user_folder.group(1))
        monkeypatch.chdir(tmp_path)
    suite = load_suite(path)
    assert suite.cells


@pytest.mark.parametrize("name", PAPER_SUITES)
def test_paper_suite_has_references(name: str) -> None:
    path = SUITES_DIR / f"{name}.yaml"
    assert path.is_file(), path
    suite = load_suite(path)
    assert suite.references, f"{name}: no references"
    assert resolve_references(suite.references)
    assert suite.description.strip()
