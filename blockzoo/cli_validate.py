"""``blockzoo validate``: train a sample of a zoo's architectures and report how well every signal ranks them.

The same core as the service's validation jobs (``blockzoo.validation``), in one process:
:func:`blockzoo.validation.pipeline.run_validation`. Trainings are cached and checkpointed in
the zoo's ``groundtruth/`` folder: Ctrl-C, then the same command, resumes at the last finished
epoch; several processes running the same command share the trainings.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Mapping

from .cli import CliError, _add_command, _add_train_recipe_args, _device, _fmt, _open_dataset, _open_zoo, _overrides, _PhaseBars, _print_json, \
    _read_arch, _say, _table

RECIPE_FIELDS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "label_smoothing", "warmup_epochs",
                 "augment", "flip")


def cmd_validate(args: argparse.Namespace) -> int:
    from .files import write_atomic
    from .validation.pipeline import run_validation
    from .validation.plan import plan_validation
    from .validation.plot import plot_report

    zoo = _open_zoo(args.zoo)
    store = _open_dataset(args.dataset)
    wanted = zoo.manifest.get("dataset_hash")
    if wanted and store.meta.get("content_hash") != wanted:
        raise CliError(f"--dataset {args.dataset} is not the dataset the zoo was built from (content hash "
                       f"{store.meta.get('content_hash', '?')[:12]}…, the zoo's: {wanted[:12]}…)")
    design = args.design or ("explicit" if args.archs else "uniform")
    archs = [_read_arch(zoo.space, text) for text in args.archs]
    plan = plan_validation(zoo.space, design=design, k=args.k, seeds=args.seeds, arch_seed=args.arch_seed,
                           target_macs=args.target_macs, tolerance=args.tolerance, architectures=archs,
                           recipe=_overrides(args, RECIPE_FIELDS), in_channels=zoo.in_channels,
                           num_classes=zoo.num_classes)
    _say(f"validating {len(plan.archs)} architectures x {len(plan.seeds)} seed(s) of {zoo.space.name} "
         f"({plan.recipe.epochs:g} epochs each); trainings are kept in {zoo.root / 'groundtruth'}")
    with _PhaseBars(args) as bars:
        report = run_validation(zoo, store, plan, progress=bars, device=_device(args.device), log=lambda m: None)
    if args.out:
        write_atomic(Path(args.out), json.dumps(report, indent=1, allow_nan=False) + "\n")
    if args.plot:
        plot_report(report, args.plot, title=f"Validation of {zoo.root.name}: {report['n_archs']} architectures "
                                             f"of {zoo.space.name} x {len(plan.seeds)} seed(s)")
    if args.json:
        _print_json(report)
        return 0
    print(_signal_table(report))
    print()
    print(report["verdict"])
    for label, path in (("report", args.out), ("plot", args.plot)):
        if path:
            print(f"{label}: {path}")
    return 0


def _interval(stats: Mapping[str, Any], key: str = "spearman", spec: str = "+.2f") -> str:
    ci = stats.get(f"{key}_ci")
    value = _fmt(stats.get(key), spec)
    return value if not ci else f"{value} [{format(ci[0], spec)}, {format(ci[1], spec)}]"


def _signal_table(report: Mapping[str, Any]) -> str:
    primary = report["primary"]
    rows = []
    for name, targets in report["signals"].items():
        acc, nll = targets["accuracy"], targets["nll"]
        paired = report["paired"].get(name, {}).get("accuracy")
        rows.append([name, _interval(acc), _fmt(acc.get("kendall"), "+.2f"), _interval(nll),
                     "(primary)" if name == primary else (_interval(paired) if paired else "-")])
    return _table(["signal", "ρ vs accuracy [95 %]", "τ", "ρ vs −NLL [95 %]", f"Δρ {primary} − signal [95 %]"],
                  rows)


def add_validate(sub: Any, common: argparse.ArgumentParser) -> None:
    p = _add_command(sub, "validate", cmd_validate, [common], "validate",
                     help="train a sample of a zoo's architectures: how well does each signal rank them?",
                     description="Train K architectures of the zoo (S seeds each) on its dataset and report how well "
                                 "every signal (the proxy, held-out accuracy, KD loss, the zero-cost baselines, "
                                 "MACs, params) ranks them, with bootstrap intervals, paired differences with the "
                                 "proxy, the seed-to-seed ceiling and a verdict (docs/validation.md). Unset recipe "
                                 "options keep the space's default ground-truth recipe.")
    p.add_argument("--zoo", type=Path, required=True, help="zoo directory")
    p.add_argument("--dataset", type=Path, required=True, help="the dataset store the zoo was built from")
    p.add_argument("archs", nargs="*", metavar="ARCH", help="design explicit: the architectures to train")
    p.add_argument("--design", choices=("uniform", "budget_band", "explicit"), default=None,
                   help="uniform (default; explicit when ARCHs are given) or budget_band (--target-macs, --tolerance)")
    p.add_argument("--k", type=int, default=None, help="architectures to train (default 10)")
    p.add_argument("--seeds", type=int, default=2, help="training seeds per architecture (default 2)")
    p.add_argument("--arch-seed", type=int, default=0, help="seeds the draws of uniform and budget_band")
    p.add_argument("--target-macs", type=float, default=None, help="budget_band: MACs per image at its centre")
    p.add_argument("--tolerance", type=float, default=None, help="budget_band: half-width as a fraction (0.1: ±10 %%)")
    _add_train_recipe_args(p)
    p.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    p.add_argument("--plot", type=Path, default=None, help="write the report's plot (PNG) here")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")

