"""A report as Markdown (``bench/results/proxy_quality[.<protocol>].md``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from .protocols import TARGETS


def _fmt(v: Optional[float], ci: Optional[list[float]] = None) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def _noise_lines(d: dict[str, Any]) -> list[str]:
    if d.get("n_archs", 0) < 2:
        return []
    return [
        f"Where the seed noise comes from ({d['n_archs']} architectures whose two runs kept per-image results): "
        f"the two runs disagree on {100 * d['mean_disagreement']:.1f} % of the test images; rms accuracy difference "
        f"{100 * d['rms_seed_difference']:.2f} points, of which the finite test set alone (independent flips, "
        f"equal expected accuracy) explains sd {100 * d['test_set_sd_of_difference']:.2f} points, "
        f"{100 * d['test_set_share_of_variance']:.0f} % of the variance. Seed-to-seed ρ of continuous measures on "
        f"the same runs: test NLL {_fmt(d['nll_seed_spearman'])}, mean p(true class) {_fmt(d['p_true_seed_spearman'])} "
        f"(accuracy {_fmt(d['accuracy_seed_spearman'])}).",
        "",
    ]


def _projection_lines(d: dict[str, Any]) -> list[str]:
    if not d:
        return []
    means = ", ".join(f"{m}: {v:.2f}" for m, v in d["reliability_of_m_seed_mean"].items())
    cost = (f", ≈ {d['sc_cpu_hours_at_measured_speed']:.0f} CPU-hours at this run's median "
            f"{d['cpu_seconds_per_training']:.0f} CPU-s per training"
            if "sc_cpu_hours_at_measured_speed" in d else "")
    return [f"Projected ceiling for means of m seeds (Spearman–Brown from the single-seed reliability): {means}. "
            f"A 0.9 ceiling needs ≈ {d['seeds_per_mean_for_0.9']} seeds per mean: "
            f"{d['sc_trainings_for_ceiling_and_40']} SC trainings for 40 architectures with the ceiling on 10{cost}.", ""]


def _ceiling_projection_lines(c: dict[str, Any], p: dict[str, Any]) -> list[str]:
    lines = []
    projected = c.get("projected_to_sc_mean")
    if projected and projected["seeds"] > 1 and projected["spearman"] is not None:
        lines.append(f"Projected to the ground truth itself, the mean of {projected['seeds']} seeds (Spearman–Brown "
                     "on the single-seed ρ and its interval): ρ ≈ "
                     f"{_fmt(projected['spearman'], projected['spearman_ci'])}.")
    if c.get("nll_single_seed_n"):
        lines.append(f"The same two seeds on test NLL ({c['nll_single_seed_n']} architectures whose runs kept it): "
                     f"ρ = {_fmt(c['nll_single_seed_spearman'], c['nll_single_seed_spearman_ci'])}.")
    check = c.get("sc_mean_vs_other_seeds")
    if check and check["n"] >= 4:
        lines.append(f"Measured directly: the SC mean against the mean of seeds {check['other_seeds']} on "
                     f"{check['n']} architectures: ρ = {_fmt(check['spearman'], check['spearman_ci'])}.")
    return [" ".join(lines), ""] if lines else []


def _verdict_lines(text: Optional[str]) -> list[str]:
    if not text:
        return []
    return ["## Verdict (generated from the intervals below)", "", text, ""]


def _paired_lines(r: dict[str, Any]) -> list[str]:
    rows = [row for row in r["rows"] if row.get("paired_blockzoo_minus_this")]
    rows += [{"label": f"`{e['name']}`", **e} for e in r["extra_signals"] if e.get("paired_blockzoo_minus_this")]
    if not rows:
        return []
    columns = [t for t in (*TARGETS, "SC_NLL") if any(t in row["paired_blockzoo_minus_this"] for row in rows)]
    lines = ["## Paired differences: ρ(BlockZoo) − ρ(signal)",
             "",
             "Architectures resampled jointly for both signals (paired bootstrap, 95 % intervals): an interval "
             "that excludes 0 means this sample tells the two apart; one that covers 0 means it cannot.",
             "",
             "| signal | " + " | ".join(f"vs {t.replace('_', ' ')}" for t in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for t in columns:
            d = row["paired_blockzoo_minus_this"].get(t)
            cells.append("–" if d is None or d["difference"] is None else
                         f"{d['difference']:+.3f}" + (f" [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}]" if d["ci"] else "")
                         + f" (n={d['n']})")
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    return lines + [""]


def markdown(r: dict[str, Any]) -> str:
    p = r["protocol"]
    c = r["ceiling_detail"]
    gt = r["ground_truth"]
    banner = {
        "quick": "> **QUICK SMOKE RUN** (`--quick`): toy data (2,000 training images, 2,000 test images, 16×16),\n"
                 "> a 3-epoch reference, 1-epoch ground truth, 8 architectures. It shows that every stage runs\n"
                 "> end to end; its correlations are **not evidence** about the proxy.",
        "partial": "> **PARTIAL**: the ground truth is not complete yet (counts below); correlations use the\n"
                   "> architectures trained so far and will change. Rerun `--stage groundtruth` to continue.",
        "complete": "",
    }[r["status"]]
    if r["status"] == "complete" and r.get("finetune_status") == "partial":
        banner = (f"> Every architecture has every SC seed; the PR and KD columns (fine-tuning from the zoo, Fig. 3) "
                  f"are **partial**: PR {gt['counts']['PR']}/{p['finetune_k']}, KD {gt['counts']['KD']}/{p['finetune_k']}.")
    lines = [
        f"# Proxy quality ({p['name']} protocol, {r['status']})", "", banner, "",
        f"Space `{p['space']}` ({p['note']}); Fashion-MNIST, training subset {p['train_limit'] or 'all 60,000'}, "
        f"test {p['test_limit'] or 'all 10,000'}; K = {r['k']} architectures sampled with seed {p['arch_seed']} "
        "(per stage a uniform depth, then a uniform ratio per layer; the reference excluded).",
        f"Reference: test accuracy {r['reference'].get('test_accuracy', float('nan')):.4f} "
        f"({p['reference_recipe']['epochs']} epochs). BlockZoo recipe: T = {p['distill_recipe']['batches']} batches of "
        f"{p['distill_recipe']['batch_size']}, {p['distill_recipe']['optimizer']} lr {p['distill_recipe']['lr']}, "
        f"remap order `{p['distill_recipe']['remap_order']}`, BN recalibrated on the T batches.",
        f"Ground truth: `GroundTruthRecipe({', '.join(f'{k}={v}' for k, v in p['groundtruth_recipe'].items())})`, "
        f"SC = mean of seeds {p['sc_seeds']}; PR and KD fine-tuned on the first {p['finetune_k']} architectures; "
        "common random numbers (same data order and augmentation for every architecture).",
        "",
        f"Ground truth so far: SC {gt['counts']['SC']}/{r['k']}, PR {gt['counts']['PR']}, KD {gt['counts']['KD']}; "
        f"SC accuracy range {gt['accuracy_range']['SC']}; mean training time (s): {gt['mean_train_seconds']}.",
        "",
        "## Acceptance checks (issue 3)",
        "",
        f"- seed-to-seed ceiling ≥ 0.9 on ≥ 10 architectures: **{'yes' if r['acceptance']['ceiling_at_least_0.9_on_10'] else 'no'}**",
        f"- BlockZoo ρ vs SC ≥ 0.80 over 40 architectures: **{'yes' if r['acceptance']['blockzoo_rho_sc_at_least_0.8_on_40'] else 'no'}** "
        f"(ρ = {_fmt(r['acceptance']['blockzoo_rho_sc'])} on {r['acceptance']['blockzoo_rho_sc_n']})",
        f"- BlockZoo above every baseline vs SC: **{'yes' if r['acceptance']['blockzoo_above_every_baseline'] else 'no'}** "
        f"(best baseline: {r['acceptance']['best_baseline']})",
        f"- BlockZoo proxy wall seconds per architecture (zoo holding the blocks): {_fmt(r['acceptance']['blockzoo_seconds_per_arch'])} "
        "(target ≤ 2 s on 2 quiet cores for mbv3-tiny at T = 20)",
        "",
        "## Seed-to-seed ceiling",
        "",
        f"Spearman ρ between the SC means of seeds {c['groups'][0]} and of seeds {c['groups'][1]} on {c['n']} "
        f"architectures: **{_fmt(c['spearman'], c['spearman_ci'])}** (Kendall τ {_fmt(c['kendall'])}). "
        f"Single seeds {c['seeds'][0]} vs {c['seeds'][1]} on {c['single_seed_n']} architectures: ρ = "
        f"{_fmt(c['single_seed_spearman'], c['single_seed_spearman_ci'])}. Mean |seed difference| "
        f"{_fmt(c['mean_abs_seed_difference'])}, max {_fmt(c['max_abs_seed_difference'])}; seed noise sd "
        f"{_fmt(c['seed_noise_sd'])}; sd of the architecture means {_fmt(c['arch_mean_sd'])}; single-seed "
        f"reliability (signal variance share) {_fmt(c['single_seed_reliability'])}.",
        "",
        *_ceiling_projection_lines(c, p),
        *_noise_lines(c.get("noise_decomposition", {})),
        *_projection_lines(c.get("projection", {})),
        *_verdict_lines(r.get("verdict")),
        "## Table 1: rank correlation with final accuracy (bootstrap 95% intervals)",
        "",
        "ρ vs SC NLL: against the seed-mean SC test NLL (lower NLL = better, so higher ρ = ranks better).",
        "",
        "| type | proxy | ρ vs SC | ρ vs PR | ρ vs KD | τ vs SC | τ vs PR | τ vs KD | n (SC/PR/KD) | ρ vs SC NLL (n) "
        "| wall s / arch |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        rho = [_fmt(row["spearman"][t], row["spearman_ci"][t]) for t in TARGETS]
        tau = [_fmt(row["kendall"][t], row["kendall_ci"][t]) for t in TARGETS]
        n = "/".join(str(row["n"][t]) for t in TARGETS)
        nll = f"{_fmt(row.get('spearman_sc_nll'), row.get('spearman_sc_nll_ci'))} ({row.get('n_sc_nll', 0)})"
        cost = "–" if row["seconds_per_arch"] is None else f"{row['seconds_per_arch']:.3f}"
        lines.append(f"| {row['group']} | {row['label']} | " + " | ".join(rho + tau) + f" | {n} | {nll} | {cost} |")
    lines += ["", "Extra signals of the BlockZoo zoo (ρ vs SC / PR / KD): " + "; ".join(
        f"`{e['name']}` " + "/".join(_fmt(e["spearman"][t]) for t in TARGETS) for e in r["extra_signals"]), ""]
    lines += _paired_lines(r)
    bz = r["proxy_cost"].get("blockzoo", {})
    lines += [
        "## Cost per architecture",
        "",
        f"BlockZoo proxy once the zoo holds the blocks: {_fmt(bz.get('score_seconds_per_arch'))} s wall "
        f"({_fmt(bz.get('score_cpu_seconds_per_arch'))} s of CPU time) per architecture scored in one call (shared "
        f"prefixes reused), {_fmt(bz.get('score_seconds_single_arch'))} s wall for one architecture alone; distilling "
        f"the {bz.get('blocks_distilled')} blocks the K architectures need took {_fmt(bz.get('distill_seconds'))} s wall "
        f"({_fmt(bz.get('distill_cpu_seconds'))} s CPU; one-time, lazily). Zero-cost baselines: the `s / arch` column "
        "(20 batches each, seed-0 init). Wall-clock on a shared 2-core machine "
        f"(load {r['machine']['load_1min']:.1f} at report time), {r['machine']['torch_threads']} torch thread(s).",
        "",
        "## Figure 2: ρ against T",
        "",
        "| T | " + " | ".join(f"PR+KD vs {t}" for t in TARGETS) + " | " + " | ".join(f"KD-only vs {t}" for t in TARGETS) + " |",
        "|---|" + "---|" * 6,
    ]
    for t in p["t_sweep"]:
        a = r["t_sweep"]["blockzoo"].get(str(t), {})
        b = r["t_sweep"]["kd_only"].get(str(t), {})
        lines.append(f"| {t} | " + " | ".join(_fmt(a.get(x)) for x in TARGETS) + " | "
                     + " | ".join(_fmt(b.get(x)) for x in TARGETS) + " |")
    lines += ["", f"![Figure 2](figures/{Path(r['figures']['fig2']).name})", "",
              "## Figure 3: final accuracy by initialisation", ""]
    for t in TARGETS:
        v = list(gt["final_accuracy"][t].values())
        if v:
            lines.append(f"- {t}: n = {len(v)}, mean {100 * np.mean(v):.2f} %, range {100 * min(v):.2f}–{100 * max(v):.2f} %")
    paired = [a for a in gt["final_accuracy"]["SC"] if a in gt["final_accuracy"]["PR"] and a in gt["final_accuracy"]["KD"]]
    if paired:
        for t in ("PR", "KD"):
            wins = sum(gt["final_accuracy"][t][a] > gt["final_accuracy"]["SC"][a] for a in paired)
            lines.append(f"- {t} beats SC on {wins}/{len(paired)} paired architectures")
    lines += ["", f"![Figure 3](figures/{Path(r['figures']['fig3']).name})", "",
              f"Generated {r['date']} by `{r['command']}`.", ""]
    return "\n".join(lines)
