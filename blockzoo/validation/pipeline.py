"""A validation end to end: measure the signals, train the plan's architectures, write the report.

The pieces are shared by both callers: ``blockzoo validate`` runs :func:`run_validation` in one
process; the service runs :func:`train_units` in many jobs at once (one per training, plus the
job that writes the report) and :func:`build_report` once every training is done.

Validations train from scratch (init ``SC`` of :mod:`.groundtruth`): the ground truth is what a
user would get by training each architecture on the zoo's dataset. Results are cached, and
checkpoints kept, under ``<zoo>/groundtruth/``: a later validation of the same zoo, recipe and
seeds reuses every training it shares with an earlier one, and a killed training resumes at its
last finished epoch.

Importing this module does not import torch (the trainer loads it when a training starts).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence

from ..files import write_atomic
from ..jsonable import json_safe
from ..progress import PhaseProgressFn, StopFn, check_stop
from ..space import Architecture, SearchSpace
from .plan import ValidationPlan
from .report import validation_report
from .signals import SignalValues, measure_signals
from .statistics import noise_decomposition

if TYPE_CHECKING:
    import torch

    from ..data import DatasetStore
    from ..zoo import BlockZoo
    from .groundtruth import GroundTruth
    from .recipe import GroundTruthRecipe

INIT = "SC"
WAIT_POLL_S = 1.0
# What a report keeps of each training (the per-image correctness stays with the stored result).
SUMMARY_FIELDS = ("arch", "seed", "test_accuracy", "test_nll", "test_mean_p_true", "train_accuracy_last_epoch",
                  "steps", "resumed_from_step", "seconds", "cpu_seconds", "device", "finished_at")

Unit = tuple[Architecture, int]
_logger = logging.getLogger(__name__)


def groundtruth_dir(zoo_root: Path | str) -> Path:
    """Where a zoo's validation trainings are cached (``cache/``) and checkpointed (``checkpoints/``),
    and (for the CLI) its architectures' signals (``signals.json``)."""
    return Path(zoo_root) / "groundtruth"


def read_signal_cache(zoo_root: Path | str) -> dict[tuple[str, str], Optional[float]]:
    """The signals measured on this zoo by earlier validations, per (arch_id, signal).

    Blocks, once distilled, never change, so neither do the values computed from them; the
    service keeps the same values as score rows instead.
    """
    path = groundtruth_dir(zoo_root) / "signals.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {(arch, name): value for arch, values in data.items() for name, value in values.items()}


def write_signal_cache(zoo_root: Path | str, values: Mapping[tuple[str, str], Optional[float]]) -> None:
    data: dict[str, dict[str, Optional[float]]] = {}
    for (arch, name), value in values.items():
        data.setdefault(arch, {})[name] = value
    write_atomic(groundtruth_dir(zoo_root) / "signals.json", json.dumps(json_safe(data), sort_keys=True, indent=1))


def ground_truth(zoo_root: Path | str, space: SearchSpace, store: "DatasetStore", recipe: "GroundTruthRecipe", *,
                 device: Optional["torch.device"] = None,
                 log: Callable[[str], None] = _logger.info) -> "GroundTruth":
    """The trainer of a zoo's validations (its cache and checkpoints under :func:`groundtruth_dir`)."""
    from ..training import default_device
    from .groundtruth import GroundTruth

    root = groundtruth_dir(zoo_root)
    return GroundTruth(space, store, recipe, cache_dir=root / "cache", checkpoint_dir=root / "checkpoints",
                       device=device or default_device(), log=log)


def train_units(gt: "GroundTruth", units: Sequence[Unit], *, should_stop: Optional[StopFn] = None,
                on_start: Optional[Callable[[Architecture, int], None]] = None,
                on_result: Optional[Callable[[Architecture, int, dict[str, Any], bool], None]] = None,
                on_wait: Optional[Callable[[list[Unit]], None]] = None, wait: bool = True,
                poll_s: float = WAIT_POLL_S) -> dict[tuple[str, int], dict[str, Any]]:
    """Every unit's result: from the cache, trained here, or waited for while another worker trains it.

    Units are taken in order; one another live worker holds is skipped and retried every
    ``poll_s`` seconds once the others are done (taken over, resuming its checkpoint, as soon as
    that worker is gone); with ``wait=False`` it is left out of the results instead.
    ``on_start(arch, seed)`` runs when this process starts training a unit,
    ``on_result(arch, seed, record, trained_here)`` when a unit's result is known, ``on_wait(units)``
    before each wait. Raises ``blockzoo.progress.Cancelled`` when ``should_stop`` turns true.
    """
    from .groundtruth import Training

    results: dict[tuple[str, int], dict[str, Any]] = {}
    pending = list(units)
    while True:
        held = []
        for arch, seed in pending:
            check_stop(should_stop)
            started: list[bool] = []

            def start(arch: Architecture = arch, seed: int = seed, started: list[bool] = started) -> None:
                started.append(True)
                if on_start is not None:
                    on_start(arch, seed)

            record = gt.run(Training(arch, INIT, seed), should_stop, on_start=start)
            if record is None:
                held.append((arch, seed))
                continue
            results[(arch.id, seed)] = record
            if on_result is not None:
                on_result(arch, seed, record, bool(started))
        if not held or not wait:
            return results
        pending = held
        if on_wait is not None:
            on_wait(pending)
        deadline = time.monotonic() + poll_s
        while time.monotonic() < deadline:
            check_stop(should_stop)
            time.sleep(min(0.2, poll_s))


def summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a training's result that a report shows."""
    return {name: record.get(name) for name in SUMMARY_FIELDS}


def build_report(plan: ValidationPlan, records: Sequence[Mapping[str, Any]], signals: SignalValues) -> dict[str, Any]:
    """The report of a finished validation (JSON-safe): :func:`~.report.validation_report` of the
    seed means, plus the plan, every training's summary, every signal's values and, with two
    seeds or more, how much of the seed-to-seed noise is the finite test set."""
    from .groundtruth import unpack_correct

    results = [summary(r) for r in records]
    report = validation_report(results, signals, seeds=plan.seeds)
    report.update(plan=plan.to_dict(), trainings=results, signal_values=signals)
    if len(plan.seeds) >= 2:
        by_unit = {(r["arch"], r["seed"]): r for r in records}
        s0, s1 = plan.seeds[:2]
        pairs = []
        for arch in plan.archs:
            a, b = by_unit.get((arch.id, s0)), by_unit.get((arch.id, s1))
            if a is None or b is None or unpack_correct(a) is None or unpack_correct(b) is None:
                continue
            pairs.append({"correct": (unpack_correct(a), unpack_correct(b)),
                          "accuracy": (a["test_accuracy"], b["test_accuracy"]), "nll": (a["test_nll"], b["test_nll"]),
                          "p_true": (a["test_mean_p_true"], b["test_mean_p_true"])})
        report["noise"] = noise_decomposition(pairs)
    return json_safe(report)


def eta_seconds(done: int, total: int, elapsed_s: float) -> Optional[float]:
    """Seconds left at the pace so far (None before the first training finished)."""
    if done <= 0 or elapsed_s <= 0 or done >= total:
        return None if done < total else 0.0
    return (total - done) * elapsed_s / done


def progress_message(done: int, total: int, elapsed_s: Optional[float], doing: str = "") -> str:
    """``"3/8 trainings done, about 4 min left; <doing>"``."""
    text = f"{done}/{total} trainings done"
    eta = eta_seconds(done, total, elapsed_s) if elapsed_s is not None else None
    if eta is not None and done < total:
        text += f", about {_duration(eta)} left"
    return f"{text}; {doing}" if doing else text


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, math.ceil(seconds))} s"
    if seconds < 90 * 60:
        return f"{math.ceil(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def run_validation(zoo: "BlockZoo", store: "DatasetStore", plan: ValidationPlan, *,
                   progress: Optional[PhaseProgressFn] = None, should_stop: Optional[StopFn] = None,
                   device: Optional["torch.device"] = None,
                   log: Callable[[str], None] = _logger.info) -> dict[str, Any]:
    """A whole validation in this process (what ``blockzoo validate`` runs): the signals (kept in
    the zoo's ``groundtruth/signals.json`` for later runs), then every training (resumed, cached or
    shared with other processes as :func:`train_units` says), then the report. Phases:
    ``distilling``, ``scoring``, ``zero-cost`` (the signals), ``training``."""
    known = read_signal_cache(zoo.root)

    def keep(values: Mapping[tuple[str, str], Optional[float]]) -> None:
        known.update(values)
        write_signal_cache(zoo.root, known)

    signals = measure_signals(zoo, zoo.space, plan.archs, zoo.in_channels, zoo.num_classes, known=known,
                              progress=progress, should_stop=should_stop, on_values=keep)
    gt = ground_truth(zoo.root, zoo.space, store, plan.recipe, device=device, log=log)
    units = plan.units
    started = time.monotonic()
    done: list[bool] = []

    def report_progress(doing: str) -> None:
        if progress is not None:
            progress("training", len(done) / len(units),
                     progress_message(len(done), len(units), time.monotonic() - started, doing))

    def finished(arch: Architecture, seed: int, record: Mapping[str, Any], trained_here: bool) -> None:
        done.append(True)
        report_progress(f"{arch.id} seed {seed}: test accuracy {record['test_accuracy']:.4f}")

    records = train_units(gt, units, should_stop=should_stop, on_result=finished,
                          on_start=lambda arch, seed: report_progress(f"training {arch.id} seed {seed}"),
                          on_wait=lambda held: report_progress(f"waiting for {len(held)} held by other workers"))
    return build_report(plan, [records[(a.id, s)] for a, s in units], signals)
