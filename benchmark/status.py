"""`alb status`: the state of every cell of a suite, read from its results folder."""

from __future__ import annotations

from benchmark.claims import is_stale, read_claim
from benchmark.store import SuiteStore
from benchmark.suite import Suite


def cell_state(store: SuiteStore, cell_id: str) -> str:
    """done | running | failed | pending (partly done, resumes) | pending."""
    claim = store.claims_dir / f"{cell_id}.json"
    if store.is_done(cell_id):
        return "done"
    if claim.exists() and not is_stale(claim):
        return "running"
    if store.failed_path(cell_id).exists():
        return "failed"
    if store.progress_path(cell_id).exists():
        return "pending (partly done, resumes)"
    return "pending"


def claim_holder(store: SuiteStore, cell_id: str) -> str:
    """Who runs the cell, from its claim: 'ray on node3 pid 123'; '' when unknown."""
    try:
        owner, _ = read_claim(store.claims_dir / f"{cell_id}.json")
    except (OSError, ValueError):  # gone since, or not a claim (InvalidClaimError is a ValueError)
        return ""
    return f"{owner.get('executor', 'local')} on {owner.get('host', '?')} pid {owner.get('pid', '?')}"


def status_lines(suite: Suite, store: SuiteStore) -> list[str]:
    """One line per cell (id, state, label; who runs it, for running cells), then the suite's counts per state."""
    counts: dict[str, int] = {}
    lines = []
    for cell in suite.cells:
        state = cell_state(store, cell.id)
        counts[state.split()[0]] = counts.get(state.split()[0], 0) + 1
        holder = claim_holder(store, cell.id) if state == "running" else ""
        lines.append(f"{cell.id}  {state:<30}  {cell.label()}" + (f"  [{holder}]" if holder else ""))
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    lines.append(f"suite '{suite.name}': {len(suite.cells)} cells: {summary}")
    return lines
