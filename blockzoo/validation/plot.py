"""The picture of a validation report: how well each signal ranks the trained architectures.

Top: Spearman ρ of every signal against the seed-mean test accuracy, with its bootstrap 95 %
interval, and the seed-to-seed ceiling when there is one. Below: one panel per signal, the
seed-mean test accuracy of each architecture against the signal's value (as computed: for a
lower-is-better signal such as KD loss the cloud falls from left to right when it ranks well).

Drawn with matplotlib's Agg canvas on a ``Figure`` of its own (no pyplot state), so several
threads may draw at once.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Mapping, Optional

from ..files import write_atomic
from ..signals import LOWER_IS_BETTER
from .report import label

COLUMNS = 4


def plot_report(report: Mapping[str, Any], path: Optional[Path | str] = None, *, title: str = "") -> bytes:
    """The report's plot as PNG bytes, also written (atomically) to ``path`` when given."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [n for n in report["signals"]]
    rows = math.ceil(len(names) / COLUMNS)
    fig = Figure(figsize=(3.2 * COLUMNS, 3.6 + 2.7 * rows), dpi=100)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(rows + 1, COLUMNS, height_ratios=[1.35] + [1] * rows)
    _rho_bars(fig.add_subplot(grid[0, :]), report, names)
    accuracy = report["target_means"]["accuracy"]
    values = report.get("signal_values", {})
    for i, name in enumerate(names):
        ax = fig.add_subplot(grid[1 + i // COLUMNS, i % COLUMNS])
        points = [(v, 100 * accuracy[a]) for a, v in values.get(name, {}).items() if v is not None and a in accuracy
                  and math.isfinite(v)]
        if points:
            xs = [p[0] for p in points]
            ax.scatter(xs, [p[1] for p in points], s=18, color="tab:blue", alpha=0.8, linewidths=0)
            if min(xs) > 0 and max(xs) / min(xs) > 1e3:  # e.g. synflow spans orders of magnitude
                ax.set_xscale("log")
        stats = report["signals"][name]["accuracy"]
        ax.set_title(f"{label(name)}: ρ = {_number(stats.get('spearman'))}", fontsize=9)
        ax.set_xlabel(name + (" (lower is better)" if name in LOWER_IS_BETTER else ""), fontsize=8)
        if i % COLUMNS == 0:
            ax.set_ylabel("trained accuracy (%)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
    seeds = report.get("seeds", [])
    fig.suptitle(title or f"Validation: {report.get('n_archs', 0)} architectures x {len(seeds)} seed(s)", fontsize=11)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    png = out.getvalue()
    if path is not None:
        write_atomic(Path(path), png)
    return png


def _rho_bars(ax: Any, report: Mapping[str, Any], names: list[str]) -> None:
    rhos = [report["signals"][n]["accuracy"].get("spearman") for n in names]
    cis = [report["signals"][n]["accuracy"].get("spearman_ci") for n in names]
    xs = range(len(names))
    primary = report.get("primary")
    colors = ["tab:red" if n == primary else "tab:blue" for n in names]
    ax.bar(xs, [0.0 if r is None else r for r in rhos], color=colors, alpha=0.75)
    for x, ci in zip(xs, cis):
        if ci:
            ax.plot([x, x], ci, color="black", linewidth=1.2)
            ax.plot([x - 0.15, x + 0.15], [ci[0]] * 2, color="black", linewidth=1)
            ax.plot([x - 0.15, x + 0.15], [ci[1]] * 2, color="black", linewidth=1)
    ceiling = (report.get("ceiling") or {}).get("accuracy", {}).get("projected", {}).get("spearman")
    if ceiling is not None:
        ax.axhline(ceiling, linestyle="--", color="0.4", linewidth=1,
                   label=f"seed-to-seed ceiling (projected), ρ = {ceiling:.2f}")
        ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(list(xs), [label(n) for n in names], rotation=25, ha="right", fontsize=8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("Spearman ρ vs trained accuracy", fontsize=8)
    ax.set_title("How each signal ranks the architectures (bars: ρ; lines: bootstrap 95 % interval)", fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)


def _number(value: Optional[float]) -> str:
    return "undefined" if value is None else f"{value:.2f}"
