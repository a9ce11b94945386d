"""`alb leaderboard`: bundles -> a static site (plain files, no server): ``index.html``, one page per benchmark
(``board-<slug>.html``) and ``leaderboard.json`` with every number the pages show."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark import __version__
from benchmark.errors import AlbError
from benchmark.leaderboard.boards import boards
from benchmark.leaderboard.merge import merge_cells
from benchmark.leaderboard.sources import Source, load_sources
from benchmark.report.render import to_html
from benchmark.report.tables import LEGEND, RANK_NOTE
from benchmark.store import atomic_write, now_iso

JSON_NAME = "leaderboard.json"
JSON_FORMAT_VERSION = 1
NOT_TOGETHER = ("Boards are never merged across protocols or component versions: a cell enters a board only when "
                "its dataset, backbone, budget, training recipe and the versions of the components that train "
                "and feed the network are exactly the board's.")


@dataclass(frozen=True)
class Site:
    out: Path
    boards: int
    bundles: int


def _write(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _why_apart(items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """dataset / backbone -> its boards, for the index: boards of one pair differ in the keys they name."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for b in items:
        groups.setdefault(f"{b['protocol'].get('dataset')} / {b['protocol'].get('backbone')}", []).append(b)
    return groups


def leaderboard_data(sources: list[Source]) -> dict[str, Any]:
    """Everything the site shows, as JSON-ready data."""
    from benchmark.report.frame import with_labels

    ranked = [s for s in sources if not s.rejected]
    merged = merge_cells(c for s in ranked for c in s.cells)
    frame = pd.concat([f for f in (merged.frame, merged.flagged) if not f.empty], ignore_index=True, sort=False) \
        if not (merged.frame.empty and merged.flagged.empty) else pd.DataFrame()
    labelled = with_labels(frame) if not frame.empty else frame
    by_digest = {s.digest: s for s in sources}
    return {"format": "alb-leaderboard", "format_version": JSON_FORMAT_VERSION, "alb_version": __version__,
            "generated": now_iso(), "bundles": [s.summary() for s in sources],
            "boards": boards(labelled, merged.sources, by_digest, merged.disagreements),
            "disagreeing_cells": [d.record() for d in merged.disagreements],
            "merged_cells": sum(len(v) > 1 for c, v in merged.sources.items()
                                if c not in {d.cell_id for d in merged.disagreements})}


def build_site(bundles: list[Path], out: Path) -> Site:
    if out.exists() and not out.is_dir():
        raise AlbError(f"--out {out} is a file; pass a folder (it is created if missing)")
    data = leaderboard_data(load_sources(bundles))
    nav = [("index", "index.html"), *((b["title"], f"board-{b['slug']}.html") for b in data["boards"])]
    n_cells = sum(len(e["cells"]) for b in data["boards"] for e in b["entries"])
    common: dict[str, Any] = {"nav": nav[:1], "version": __version__, "generated": data["generated"],
                              "n_cells": n_cells}
    for b in data["boards"]:
        siblings = [s for s in data["boards"] if s is not b and s["protocol"].get("dataset") == b["protocol"].get(
            "dataset") and s["protocol"].get("backbone") == b["protocol"].get("backbone")]
        _write(out / f"board-{b['slug']}.html", to_html(
            "site_board.html.j2", title=f"Leaderboard — {b['title']}", board=b, siblings=siblings,
            notes=[RANK_NOTE, LEGEND, NOT_TOGETHER], **common))
    _write(out / "index.html", to_html("site_index.html.j2", title="alb leaderboard", data=data,
                                       groups=_why_apart(data["boards"]), json_name=JSON_NAME,
                                       not_together=NOT_TOGETHER, **common))
    _write(out / JSON_NAME, json.dumps(data, indent=1, sort_keys=True, allow_nan=False, default=str) + "\n")
    return Site(out, len(data["boards"]), len(data["bundles"]))
