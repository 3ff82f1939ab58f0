"""Figure 2 (ρ against the number of KD batches T) and Figure 3 (final accuracy by
initialisation) of a report, as PNGs in ``bench/results/figures/``."""

from __future__ import annotations

from typing import Any

import numpy as np

from .protocols import T_SWEEP, TARGETS
from .workspace import FIGURES, RESULTS


def plot(report: dict[str, Any], stem: str) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    FIGURES.mkdir(parents=True, exist_ok=True)
    out = {}
    # Figure 2: ρ vs T.
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    for ax, target in zip(axes, TARGETS):
        for kind, style, label in (("blockzoo", "o-", "PR + KD (BlockZoo)"), ("kd_only", "s--", "KD only")):
            pts = sorted((int(t), v[target]) for t, v in report["t_sweep"][kind].items() if v[target] is not None)
            if pts:
                ax.plot([t for t, _ in pts], [v for _, v in pts], style, label=label)
        if report["ceiling"] is not None:
            ax.axhline(report["ceiling"], color="grey", lw=0.8, ls=":", label="seed-to-seed ceiling")
        ax.set_xscale("log")
        ax.set_xticks(list(T_SWEEP))
        ax.set_xticklabels([str(t) for t in T_SWEEP])
        ax.set_xlabel("KD batches T")
        ax.set_title(f"vs {target} final accuracy")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Spearman ρ")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=8)
    fig.suptitle(f"Figure 2 ({report['status']}, {report['protocol']['name']} protocol): ρ against the number of KD batches")
    fig.tight_layout()
    path = FIGURES / f"{stem}_fig2_rho_vs_T.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    out["fig2"] = str(path.relative_to(RESULTS))
    # Figure 3: final accuracy by initialisation.
    table = report["ground_truth"]["final_accuracy"]
    fig, ax = plt.subplots(figsize=(6, 4))
    data = [[100 * v for v in table[t].values()] for t in TARGETS]
    if any(data):
        ax.boxplot([d if d else [float("nan")] for d in data], showfliers=False)
        ax.set_xticks([1, 2, 3], [f"{t} (n={len(d)})" for t, d in zip(TARGETS, data)])
        paired = [a for a in table["SC"] if a in table["PR"] and a in table["KD"]]
        for a in paired:
            ax.plot([1, 2, 3], [100 * table[t][a] for t in TARGETS], color="grey", alpha=0.35, lw=0.8)
        for i, d in enumerate(data, start=1):
            ax.scatter(np.full(len(d), i) + np.linspace(-0.08, 0.08, max(len(d), 1))[:len(d)], d, s=10, zorder=3)
    ax.set_ylabel("final test accuracy (%)")
    ax.set_title(f"Figure 3 ({report['status']}): fine-tuned accuracy by initialisation")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = FIGURES / f"{stem}_fig3_final_accuracy_by_init.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    out["fig3"] = str(path.relative_to(RESULTS))
    return out
