"""``alb data fetch`` and ``alb data list``: get the data of suites once, and show what is on disk."""

from __future__ import annotations

from pathlib import Path

from benchmark.data.cards import CARDS, WEIGHTS, DataCard
from benchmark.data.fetch import file_state, problems_message
from benchmark.data.requirements import DataMissingError, input_problems, needed
from benchmark.errors import ConfigError


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return ""


def _targets(items: list[str]) -> tuple[list[str], list[str]]:
    """Dataset specs and backbones (init: imagenet) named by suite files and dataset names."""
    from benchmark.data import is_known_dataset
    from benchmark.suite import load_suite

    datasets: dict[str, None] = {}
    backbones: dict[str, None] = {}
    for item in items:
        if item.endswith((".yaml", ".yml")) or Path(item).is_file():
            suite_datasets, suite_backbones = needed(load_suite(Path(item)).cells)
            datasets.update(dict.fromkeys(suite_datasets))
            backbones.update(dict.fromkeys(suite_backbones))
        elif is_known_dataset(item) or item.startswith("hf:"):
            datasets[item] = None
        else:
            raise ConfigError(f"'{item}' is neither a suite file nor a known dataset; datasets: "
                              f"{', '.join(CARDS)} (alb data list)")
    return list(datasets), list(backbones)


def fetch(items: list[str], data_dir: Path) -> list[str]:
    """Fetch, verify and unpack what ``items`` need; the lines to print. DataMissingError on any problem."""
    from benchmark.data.weights import hub_remote, local_copy

    datasets, backbones = _targets(items)
    for spec in datasets:
        if spec.startswith("hf:"):
            from benchmark.data.hf import prepare

            prepare(spec)
    problems = input_problems(datasets, backbones, data_dir)
    if problems:
        raise DataMissingError(problems_message(problems, data_dir, items, ""))
    lines = []
    for name in datasets:
        card = CARDS.get(name)
        if card is None:
            lines.append(f"{name}: nothing to fetch (given by path, or a plugin's dataset)")
        for file in card.files if card else ():
            state = file_state(file, data_dir)
            lines.append(f"{name}: {state.path} ({_size(state.size)}, {state.verified})")
        if card and not card.files:
            lines.append(f"{name}: embedded in scikit-learn, nothing to fetch")
    for backbone in backbones:
        where = local_copy(data_dir, backbone)
        file = WEIGHTS.get(backbone) or hub_remote(backbone)
        shown = where or f"the library's cache (download {file.url} to {data_dir / file.path} for a copy here)"
        lines.append(f"init imagenet, {backbone}: {shown}")
    return lines


def card_lines(card: DataCard, data_dir: Path) -> list[str]:
    states = [file_state(f, data_dir) for f in card.files]
    present = all(s.present for s in states)
    size = sum(s.size for s in states)
    verified = "; ".join(sorted({s.verified for s in states if s.verified})) or "-"
    status = ("embedded" if not card.files else
              f"present, {_size(size)}, {verified}" if present else "absent" + (f" ({verified})" if size else ""))
    lines = [f"{card.name}: {card.title} [{status}]",
             f"    source:   {card.homepage}",
             f"    license:  {card.license}",
             f"    cite:     {card.citation}",
             f"    splits:   {card.splits}"]
    lines += [f"    file:     {f.path} <- {f.url} ({f.checksum or 'no checksum'}; {f.checksum_source})"
              for f in card.files]
    return lines


def listing(data_dir: Path) -> list[str]:
    lines = [f"datasets in {data_dir}:"]
    for card in CARDS.values():
        lines += card_lines(card, data_dir)
    lines.append("by path or from the Hugging Face Hub: npz:PATH, image_folder:PATH[:SIZE], hf:NAME[:CONFIG] "
                 "(README: Datasets)")
    return lines
