"""The report stage: Table 1, the seed-to-seed ceiling, Figure 2 and 3 data, as one JSON dict
(``bench/results/proxy_quality[.<protocol>].json``; :mod:`.markdown` renders it, :mod:`.plots`
draws its figures). Only cached results are read: nothing is trained here."""

from __future__ import annotations

import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import torch

from blockzoo.validation.groundtruth import Training, unpack_correct, write_json_atomic
from blockzoo.validation.report import clean, clean_interval, verdict_sentences
from blockzoo.validation.statistics import (
    correlate, noise_decomposition, paired_difference, project_ceiling, seed_projection, seed_reliability,
)

from .markdown import markdown
from .plots import plot
from .protocols import TARGETS, TUNING_VARIANTS
from .workspace import Bench

ROWS = [  # (row name, group, label)
    ("gradnorm", "baseline", "Gradnorm"), ("fisher", "baseline", "Fisher"), ("snip", "baseline", "Snip"),
    ("synflow", "baseline", "Synflow"), ("naswot", "baseline", "NASWOT"), ("flops", "baseline", "FLOPs (MACs)"),
    ("params", "baseline", "Params"), ("l2norm", "baseline", "L2norm"),
    ("pr_only_no_recal", "ablation", "Initial accuracy of PR (BN stats from the reference)"),
    ("pr_only", "ablation", "Initial accuracy of PR (BN recalibrated on the T batches)"),
    ("kd_only_T20", "ablation", "Initial accuracy of KD-only, 20 batches"),
    ("kd_only_epoch", "ablation", "Initial accuracy of KD-only, one epoch of batches"),
    ("blockzoo_no_recal", "ablation", "PR + KD without BN recalibration"),
    ("blockzoo", "ours", "**PR + KD (BlockZoo), T = 20**"),
] + [(name, "tuning", f"PR + KD, {', '.join(f'{k} {v}' for k, v in changes.items())}")
     for name, changes in TUNING_VARIANTS.items()]
OURS = "blockzoo"
# The SC test NLL beside accuracy (seed mean; correlated against −NLL so that higher ρ = better).
NLL_TARGET = "SC_NLL"


def ground_truth_table(bench: Bench) -> dict[str, Any]:
    """Final accuracies found in the cache, per target, plus every SC seed's results."""
    gt = bench.groundtruth()
    p = bench.p
    table: dict[str, dict[str, float]] = {"SC": {}, "PR": {}, "KD": {}}
    sc_nll: dict[str, float] = {}
    seeds: dict[int, dict[str, float]] = {}
    records: dict[int, dict[str, dict[str, Any]]] = {}
    seconds: dict[str, list[float]] = {"SC": [], "PR": [], "KD": []}
    cpu_seconds: list[float] = []  # SC trainings (wall time includes time-sharing with other work)
    for arch in bench.archs:
        for s in p.all_seeds:
            r = gt.cached(Training(arch, "SC", s))
            if r is not None:
                seeds.setdefault(s, {})[arch.id] = r["test_accuracy"]
                records.setdefault(s, {})[arch.id] = r
                seconds["SC"].append(r["seconds"])
                cpu_seconds.append(r.get("cpu_seconds", r["seconds"]))
        got = [seeds.get(s, {}).get(arch.id) for s in p.sc_seeds]
        if all(v is not None for v in got):
            table["SC"][arch.id] = float(np.mean(got))
            nll = [records[s][arch.id].get("test_nll") for s in p.sc_seeds]
            if all(v is not None for v in nll):
                sc_nll[arch.id] = float(np.mean(nll))
        for init in ("PR", "KD"):
            if bench.p.finetune_k:
                r = gt.cached(Training(arch, init, p.sc_seeds[0]))
                if r is not None:
                    table[init][arch.id] = r["test_accuracy"]
                    seconds[init].append(r["seconds"])
    return {"table": table, "sc_nll": sc_nll, "seeds": seeds, "records": records, "seconds": seconds,
            "sc_cpu_seconds": cpu_seconds}


def seed_noise(records: Mapping[int, Mapping[str, Any]], ids: list[str], s0: int, s1: int) -> dict[str, Any]:
    """:func:`noise_decomposition` on the architectures whose two runs kept per-image results."""
    pairs = []
    for a in ids:
        r0, r1 = records.get(s0, {}).get(a), records.get(s1, {}).get(a)
        if r0 is None or r1 is None:
            continue
        c0, c1 = unpack_correct(r0), unpack_correct(r1)
        if c0 is None or c1 is None:
            continue
        pairs.append({"correct": (c0, c1), "accuracy": (r0["test_accuracy"], r1["test_accuracy"]),
                      "nll": (r0["test_nll"], r1["test_nll"]),
                      "p_true": (r0["test_mean_p_true"], r1["test_mean_p_true"])})
    out = noise_decomposition(pairs)
    out["seeds"] = [s0, s1]
    for key in ("nll_seed_spearman", "p_true_seed_spearman", "accuracy_seed_spearman"):
        if key in out:
            out[key] = clean(out[key])
    return out


def ceiling_detail(bench: Bench, gtt: dict[str, Any]) -> dict[str, Any]:
    """ρ between the SC means of two disjoint seed groups on the architectures that have every
    seed of both; the plain two-seed numbers (first seed of each group) with the variance
    decomposition, its projection to the SC mean, and the same on test NLL."""
    p, seeds, records = bench.p, gtt["seeds"], gtt["records"]
    ids = [a.id for a in bench.archs]
    group_a, group_b = p.ceiling_groups
    full = [a for a in ids if all(a in seeds.get(s, {}) for s in (*group_a, *group_b))]
    ceiling = correlate(np.array([np.mean([seeds[s][a] for s in group_a]) for a in full]),
                        np.array([np.mean([seeds[s][a] for s in group_b]) for a in full]))
    s0, s1 = group_a[0], group_b[0]
    both = [a for a in ids if a in seeds.get(s0, {}) and a in seeds.get(s1, {})]
    single = correlate(np.array([seeds[s0][a] for a in both]), np.array([seeds[s1][a] for a in both]))
    noise = seed_reliability([seeds[s0][a] for a in both], [seeds[s1][a] for a in both])
    nll_both = [a for a in both if records[s0][a].get("test_nll") is not None
                and records[s1][a].get("test_nll") is not None]
    nll_single = correlate(np.array([-records[s0][a]["test_nll"] for a in nll_both]),
                           np.array([-records[s1][a]["test_nll"] for a in nll_both]))
    projected = project_ceiling(single, len(p.sc_seeds))
    detail = {
        "spearman": clean(ceiling["spearman"]), "kendall": clean(ceiling["kendall"]),
        "spearman_ci": ceiling["spearman_ci"], "n": len(full), "groups": [list(group_a), list(group_b)],
        "single_seed_spearman": clean(single["spearman"]), "single_seed_spearman_ci": single["spearman_ci"],
        "single_seed_n": len(both), "seeds": [s0, s1],
        "projected_to_sc_mean": {"seeds": len(p.sc_seeds), "spearman": clean(projected["spearman"]),
                                 "spearman_ci": clean_interval(projected["spearman_ci"])},
        "nll_single_seed_spearman": clean(nll_single["spearman"]),
        "nll_single_seed_spearman_ci": nll_single["spearman_ci"], "nll_single_seed_n": len(nll_both),
        "mean_abs_seed_difference": clean(noise["mean_abs_difference"]),
        "max_abs_seed_difference": clean(noise["max_abs_difference"]),
        "seed_noise_sd": clean(noise["noise_sd"]), "arch_mean_sd": clean(noise["arch_mean_sd"]),
        "single_seed_reliability": clean(noise["reliability"]),
        "noise_decomposition": seed_noise(records, ids, s0, s1),
        "projection": seed_projection(noise["reliability"], float(np.median(gtt["sc_cpu_seconds"]))
                                      if gtt["sc_cpu_seconds"] else None),
    }
    if p.extra_seeds:
        # The ceiling of the SC mean measured directly: the same number of other seeds, averaged.
        other = [s for s in p.extra_seeds if s not in p.sc_seeds][:len(p.sc_seeds)]
        have = [a for a in ids if all(a in seeds.get(s, {}) for s in (*p.sc_seeds, *other))]
        check = correlate(np.array([np.mean([seeds[s][a] for s in p.sc_seeds]) for a in have]),
                          np.array([np.mean([seeds[s][a] for s in other]) for a in have]))
        detail["sc_mean_vs_other_seeds"] = {"other_seeds": other, "n": len(have), "spearman": clean(check["spearman"]),
                                            "spearman_ci": check["spearman_ci"]}
    return detail


def make_report(bench: Bench, out_stem: Path) -> dict[str, Any]:
    proxies = bench.proxies()
    gtt = ground_truth_table(bench)
    table = dict(gtt["table"])
    table[NLL_TARGET] = {a: -v for a, v in gtt["sc_nll"].items()}
    p = bench.p
    ids = [a.id for a in bench.archs]

    def common(values: Mapping[str, Optional[float]], target: str, *more: Mapping[str, Optional[float]]) -> list[str]:
        return [a for a in ids if a in table[target] and values.get(a) is not None
                and all(m.get(a) is not None for m in more)]

    def corr_against(values: dict[str, Optional[float]], target: str) -> dict[str, Any]:
        ids_t = common(values, target)
        return correlate(np.array([values[a] for a in ids_t], dtype=float),
                         np.array([table[target][a] for a in ids_t], dtype=float))

    def paired_against(ours: Mapping[str, Optional[float]], values: Mapping[str, Optional[float]],
                       target: str) -> dict[str, Any]:
        ids_t = common(ours, target, values)
        d = paired_difference(np.array([ours[a] for a in ids_t], dtype=float),
                              np.array([values[a] for a in ids_t], dtype=float),
                              np.array([table[target][a] for a in ids_t], dtype=float))
        return {"difference": clean(d["spearman"]), "ci": clean_interval(d["spearman_ci"]), "n": d["n"]}

    ours_values = proxies.get(OURS, {}).get("values")
    rows = []
    for name, group, label in ROWS:
        entry = proxies.get(name)
        if entry is None:
            continue
        stats = {t: corr_against(entry["values"], t) for t in TARGETS}
        nll = corr_against(entry["values"], NLL_TARGET)
        rows.append({
            "name": name, "group": group, "label": label,
            "spearman": {t: clean(stats[t]["spearman"]) for t in TARGETS},
            "kendall": {t: clean(stats[t]["kendall"]) for t in TARGETS},
            "spearman_ci": {t: stats[t]["spearman_ci"] for t in TARGETS},
            "kendall_ci": {t: stats[t]["kendall_ci"] for t in TARGETS},
            "n": {t: stats[t]["n"] for t in TARGETS},
            "spearman_sc_nll": clean(nll["spearman"]), "spearman_sc_nll_ci": nll["spearman_ci"], "n_sc_nll": nll["n"],
            "paired_blockzoo_minus_this": (
                None if ours_values is None or name == OURS else
                {t: paired_against(ours_values, entry["values"], t) for t in (*TARGETS, NLL_TARGET)}),
            "seconds_per_arch": clean(entry.get("score_seconds_per_arch", float("nan"))),
            "seconds_single_arch": clean(entry.get("score_seconds_single_arch", float("nan"))),
            "distill_seconds": clean(entry.get("distill_seconds", float("nan"))),
        })
    extras = []
    for name in ("heldout", "kd_loss"):
        entry = proxies.get(OURS)
        if entry is None:
            continue
        values = {a: (-v if name == "kd_loss" else v) for a, v in entry[name].items()}
        stats = {t: corr_against(values, t) for t in TARGETS}
        extras.append({"name": f"blockzoo_{name}", "spearman": {t: clean(stats[t]["spearman"]) for t in TARGETS},
                       "spearman_ci": {t: stats[t]["spearman_ci"] for t in TARGETS},
                       "n": {t: stats[t]["n"] for t in TARGETS},
                       "paired_blockzoo_minus_this": {t: paired_against(ours_values, values, t) for t in TARGETS}})

    ceiling = ceiling_detail(bench, gtt)

    # Figure 2: ρ against T.
    sweep: dict[str, dict[int, Any]] = {"blockzoo": {}, "kd_only": {}}
    for t in p.t_sweep:
        for kind, name in (("blockzoo", "blockzoo" if t == p.distill.batches else f"blockzoo_T{t}"),
                           ("kd_only", f"kd_only_T{t}")):
            entry = proxies.get(name)
            if entry is not None:
                sweep[kind][t] = {tg: clean(corr_against(entry["values"], tg)["spearman"]) for tg in TARGETS}

    sc_table = {t: gtt["table"][t] for t in TARGETS}
    acc_range = {t: ([clean(min(v.values())), clean(max(v.values()))] if v else None) for t, v in sc_table.items()}
    # Table 1's primary evidence is SC; the fine-tuning columns (PR, KD) may follow later and are
    # labelled on their own (issue 15: "complete" = every architecture with every SC seed).
    complete = len(sc_table["SC"]) == len(ids) and ceiling["n"] >= min(p.ceiling_k, 10)
    finetune_complete = len(sc_table["PR"]) >= p.finetune_k and len(sc_table["KD"]) >= p.finetune_k
    status = ("quick" if p.name == "quick" else "complete" if complete else "partial")
    ours = next((r for r in rows if r["name"] == OURS), None)
    baselines = [r for r in rows if r["group"] == "baseline" and r["spearman"]["SC"] is not None]
    best = max(baselines, key=lambda r: r["spearman"]["SC"], default=None)
    bz_entry = proxies.get(OURS, {})
    bz_cost = bz_entry.get("cpu_cost", {}).get("score_seconds_per_arch", bz_entry.get("score_seconds_per_arch"))
    acceptance = {
        "ceiling_at_least_0.9_on_10": bool(ceiling["n"] >= 10 and (ceiling["spearman"] or 0) >= 0.9),
        "blockzoo_rho_sc": None if ours is None else ours["spearman"]["SC"],
        "blockzoo_rho_sc_n": None if ours is None else ours["n"]["SC"],
        "blockzoo_rho_sc_at_least_0.8_on_40": bool(ours is not None and ours["n"]["SC"] >= 40
                                                   and (ours["spearman"]["SC"] or -1) >= 0.8),
        "best_baseline": None if best is None else {"name": best["name"], "rho_sc": best["spearman"]["SC"]},
        "blockzoo_above_every_baseline": bool(ours is not None and best is not None and ours["spearman"]["SC"] is not None
                                              and ours["spearman"]["SC"] > best["spearman"]["SC"]),
        "blockzoo_seconds_per_arch": clean(bz_cost) if bz_cost is not None else None,
    }
    report = {
        "status": status,
        "finetune_status": "complete" if finetune_complete else "partial",
        "protocol": p.to_dict(),
        "k": len(ids),
        "archs": ids,
        "ceiling": ceiling["spearman"],
        "ceiling_detail": ceiling,
        "acceptance": acceptance,
        "verdict": table1_verdict(rows, ours, p.sc_seeds),
        "rows": rows,
        "extra_signals": extras,
        "t_sweep": {k: {str(t): v for t, v in d.items()} for k, d in sweep.items()},
        "ground_truth": {"counts": {t: len(v) for t, v in sc_table.items()}, "accuracy_range": acc_range,
                         "final_accuracy": sc_table, "sc_seeds": {str(s): v for s, v in gtt["seeds"].items()},
                         "sc_mean_test_nll": gtt["sc_nll"],
                         "mean_train_seconds": {t: clean(float(np.mean(v)) if v else float("nan"))
                                                for t, v in gtt["seconds"].items()}},
        "reference": bench.reference_json(),
        "proxy_cost": {name: {k: clean(e.get(k, float("nan"))) for k in
                              ("score_seconds_per_arch", "score_cpu_seconds_per_arch", "score_seconds_single_arch",
                               "distill_seconds", "distill_cpu_seconds")}
                       | {"blocks_distilled": e.get("blocks_distilled"), "device": e.get("device", "cpu"),
                          "cpu_cost": e.get("cpu_cost")}
                       for name, e in proxies.items()},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "load_1min": os.getloadavg()[0], "torch": torch.__version__,
                    "python": platform.python_version(), "torch_threads": torch.get_num_threads()},
        "command": " ".join([Path(sys.executable).name, "-m", "bench.proxy_quality", *sys.argv[1:]]),
    }
    report["figures"] = plot(report, out_stem.name)
    write_json_atomic(report, out_stem.parent / f"{out_stem.name}.json")
    (out_stem.parent / f"{out_stem.name}.md").write_text(markdown(report))
    return report


def table1_verdict(rows: list[dict[str, Any]], ours: Optional[dict[str, Any]],
                   sc_seeds: tuple[int, ...]) -> Optional[str]:
    """The generated paragraph for the SC column: the BlockZoo proxy against chance and, pairwise,
    against every baseline and ablation (never the tuning variants: they are recipe choices)."""
    if ours is None:
        return None
    own = {"spearman": ours["spearman"]["SC"], "spearman_ci": ours["spearman_ci"]["SC"], "n": ours["n"]["SC"]}
    labels = {r["name"]: r["label"].replace("**", "") for r in rows}
    paired = {r["name"]: {"spearman": r["paired_blockzoo_minus_this"]["SC"]["difference"],
                          "spearman_ci": r["paired_blockzoo_minus_this"]["SC"]["ci"]}
              for r in rows if r["group"] in ("baseline", "ablation") and r["paired_blockzoo_minus_this"]
              and r["paired_blockzoo_minus_this"]["SC"]["n"]}
    target = f"final SC accuracy (mean of seeds {list(sc_seeds)})" if len(sc_seeds) > 1 else "final SC accuracy"
    return " ".join(verdict_sentences("the BlockZoo proxy (PR + KD, T = 20)", own, paired, target_label=target,
                                      labels=labels))
