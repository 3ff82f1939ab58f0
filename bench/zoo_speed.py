"""Issue acceptance: block-distillation throughput with shared teacher features, and scoring speed.

"``bench/zoo_speed.py`` on ``mbv3-tiny``, Fashion-MNIST, 2 CPU cores: blocks distilled per second
with shared teacher features vs a naive loop that recomputes teacher features per block (report
the ratio; shared must be >= 2x faster), and architectures scored per second."

Setup: Fashion-MNIST (``train_limit=10000``) imported into ``bench/results/tmp/zoo_speed/``; the
reference is a trained ``mbv3-tiny`` reference for that dataset found under
``bench/results/tmp/`` (another bench's output; the best test accuracy wins), else an untrained
one (a speed benchmark does not need a good reference; the report says which); a zoo made
with ``BlockZoo.create_from_parts`` and the default ``DistillRecipe`` (T=20 batches of 64).

Engines, timed on the same seeded sample of candidate blocks per stage, in one process,
stage by stage and repeat by repeat with the engine order rotated, so all see the same load:

  (a) naive: per block, per KD batch, the reference's features for the block's stage are
      recomputed from the images, and the block trains alone with its own optimizer;
  (b) shared teacher features (computed once, their time included) + the per-block loop engine
      (``blockzoo.distill.distill_blocks``);
  (c) shared teacher features + the stacked engine (``blockzoo.distill.distill_stacked``).

All three train the same blocks from the same PR init; (a) and (b) must be bit-identical, (c)
equal up to float32 rounding (reported). Then: ``--archs`` random architectures, their missing
blocks distilled lazily with the stacked engine (timed and reported apart), and
``blockzoo.proxy.score_architectures`` timed on them (architectures scored per second).

    .venv/bin/python -m bench.zoo_speed   # writes bench/results/zoo_speed.{md,json}
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import shutil
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open

from blockzoo.data import import_builtin, open_store, to_tensor_split
from blockzoo.distill import DistillRecipe, distill_blocks, make_optimizer, teacher_features
from blockzoo.nets import Network, build_network
from blockzoo.proxy import score_architectures
from blockzoo.reference import load_reference
from blockzoo.space import get_space, sample_architectures
from blockzoo.distill.stacked import distill_stacked
from blockzoo.zoo import BlockZoo, KDData, atomic_save
from bench.benchutil import cpu_model

RESULTS = Path(__file__).resolve().parent / "results"
WORK = RESULTS / "tmp" / "zoo_speed"  # tmp/ is shared with other benches: own subfolder
SPACE = "mbv3-tiny"
TRAIN_LIMIT = 10_000
ENGINES = ("naive", "shared_loop", "shared_stacked")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message} (load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)


def find_reference(space, dataset_hash: str) -> tuple[Path | None, dict]:
    """A trained reference of ``space`` for this dataset left under bench/results/tmp/, best first."""
    found = []
    for path in (RESULTS / "tmp").rglob("*.safetensors"):
        if WORK in path.parents or "reference" not in path.name:
            continue
        try:
            with safe_open(str(path), "pt") as fh:
                meta = fh.metadata() or {}
        except Exception:  # a file another bench is writing right now
            continue
        if meta.get("space") == space.name and meta.get("dataset_hash") == dataset_hash \
                and meta.get("arch") == space.reference.id and "test_accuracy" in meta:
            found.append((float(meta["test_accuracy"]), path, meta))
    if not found:
        return None, {}
    accuracy, path, meta = max(found, key=lambda f: f[0])
    return path, meta


# --- the three engines ------------------------------------------------------------------------
@torch.no_grad()
def stage_pair(reference: Network, images: torch.Tensor, stage: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's features entering and leaving ``stage``, recomputed from the images."""
    x = reference.prefix(images)
    for m in range(stage):
        x = reference.stages[m](x)
    return x, reference.stages[stage](x)


def naive(reference: Network, images: list[torch.Tensor], blocks: dict, stage: int, recipe: DistillRecipe) -> None:
    """Per block: recompute the teacher pair of every batch, train alone with its own optimizer."""
    for block in blocks.values():
        block.train()
        optimizer = make_optimizer(list(block.parameters()), recipe)
        for batch in images[:recipe.batches]:
            x, y = stage_pair(reference, batch, stage)
            loss = F.mse_loss(block(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def max_relative_difference(a: dict, b: dict) -> float:
    worst = 0.0
    for key in a:
        for x, y in zip(a[key].state_dict().values(), b[key].state_dict().values()):
            if x.is_floating_point():
                worst = max(worst, ((x - y).abs().max() / x.abs().max().clamp(min=1)).item())
    return worst


def bit_identical(a: dict, b: dict) -> bool:
    return all(torch.equal(x, y) for key in a
               for x, y in zip(a[key].state_dict().values(), b[key].state_dict().values()))


def time_engines(zoo: BlockZoo, args: argparse.Namespace) -> dict:
    space, recipe, reference = zoo.space, zoo.recipe, zoo.reference
    images = zoo.kd_data.batches()
    rng = random.Random(args.seed)
    sample = {m: rng.sample(space.stage_blocks(m), args.blocks_per_stage) for m in range(space.num_stages)}
    initial = {m: {e: zoo.initial_block(m, e) for e in sample[m]} for m in sample}
    seconds = {e: [[0.0] * space.num_stages for _ in range(args.repeats)] for e in ENGINES}
    teacher_seconds = []
    checks: dict = {"naive_equals_loop_bitwise": True,
                    "stacked_vs_loop_max_relative_difference": [0.0] * space.num_stages, "kd_loss_mean": {}}
    kd_losses = {e: [] for e in ENGINES[1:]}
    for rep in range(args.repeats):
        started = time.perf_counter()
        teachers = teacher_features(reference, images)  # shared by (b) and (c): charged to both
        teacher_seconds.append(time.perf_counter() - started)
        for m in range(space.num_stages):
            order = ENGINES[(rep + m) % 3:] + ENGINES[:(rep + m) % 3]  # rotate who goes first
            trained, stacked_stats = {}, {}
            for engine in order:
                blocks = copy.deepcopy(initial[m])
                started = time.perf_counter()
                if engine == "naive":
                    naive(reference, images, blocks, m, recipe)
                else:
                    fn = distill_blocks if engine == "shared_loop" else distill_stacked
                    stats = fn(blocks, teachers[m], recipe)
                    if rep == 0:
                        kd_losses[engine] += [s.kd_loss for s in stats.values()]
                    if engine == "shared_stacked":
                        stacked_stats = stats
                seconds[engine][rep][m] = time.perf_counter() - started
                trained[engine] = blocks
            checks["naive_equals_loop_bitwise"] &= bit_identical(trained["naive"], trained["shared_loop"])
            differences = checks["stacked_vs_loop_max_relative_difference"]
            differences[m] = max(differences[m], max_relative_difference(trained["shared_loop"], trained["shared_stacked"]))
            if rep == 0 and m == space.num_stages - 1:
                # Control: how far the loop engine itself moves when its init is perturbed by 1e-7.
                perturbed = copy.deepcopy(initial[m])
                generator = torch.Generator().manual_seed(args.seed)
                with torch.no_grad():
                    for block in perturbed.values():
                        for p in block.parameters():
                            p.mul_(1 + 1e-7 * torch.randn(p.shape, generator=generator))
                distill_blocks(perturbed, teachers[m], recipe)
                checks["loop_vs_loop_with_init_perturbed_1e-7_last_stage"] = max_relative_difference(
                    trained["shared_loop"], perturbed)
            log(f"repeat {rep + 1}/{args.repeats} stage {m + 1}: " + ", ".join(
                f"{e} {seconds[e][rep][m]:.1f} s" for e in ENGINES))
            if rep == args.repeats - 1:  # keep the trained blocks: the scoring part reuses them
                for e, block in trained["shared_stacked"].items():
                    atomic_save(block.state_dict(), zoo.block_path(m, e), stacked_stats[e].to_metadata())
    checks["kd_loss_mean"] = {e: statistics.fmean(v) for e, v in kd_losses.items()}

    count = args.blocks_per_stage * space.num_stages
    per_repeat = {
        e: [sum(seconds[e][r]) + (teacher_seconds[r] if e != "naive" else 0.0) for r in range(args.repeats)]
        for e in ENGINES
    }
    total = {e: sum(v) for e, v in per_repeat.items()}
    rate = {e: count * args.repeats / total[e] for e in ENGINES}
    return {
        "blocks": count, "blocks_per_stage": args.blocks_per_stage, "repeats": args.repeats,
        "sample": {f"s{m + 1}": ["".join(str(d) for d in e) for e in v] for m, v in sample.items()},
        "teacher_feature_seconds": teacher_seconds,
        "seconds_per_stage": seconds,           # engine -> repeat -> stage (training only)
        "seconds_per_repeat": per_repeat,       # + teacher features for the shared engines
        "blocks_per_second": rate,
        "ratios": {
            "shared_loop_over_naive": rate["shared_loop"] / rate["naive"],
            "shared_stacked_over_naive": rate["shared_stacked"] / rate["naive"],
            "shared_stacked_over_shared_loop": rate["shared_stacked"] / rate["shared_loop"],
        },
        "ratio_per_repeat_shared_loop_over_naive": [
            per_repeat["naive"][r] / per_repeat["shared_loop"][r] for r in range(args.repeats)],
        "ratio_per_repeat_stacked_over_loop": [
            per_repeat["shared_loop"][r] / per_repeat["shared_stacked"][r] for r in range(args.repeats)],
        "checks": checks,
    }


def time_scoring(zoo: BlockZoo, args: argparse.Namespace) -> dict:
    archs = sample_architectures(zoo.space, args.archs, args.seed + 1)
    missing = zoo.missing_blocks(archs)
    wanted = sum(len(v) for v in missing.values())
    log(f"scoring: {len(archs)} architectures need {wanted} more blocks (stacked engine, lazy build)")
    started = time.perf_counter()
    for stage, expands in sorted(missing.items()):  # what BlockZoo.distill does, with the stacked engine
        blocks = {e: zoo.initial_block(stage, e) for e in expands}

        def persist(chunk: dict, stage: int = stage, blocks: dict = blocks) -> None:
            for e, stats in chunk.items():
                atomic_save(blocks[e].state_dict(), zoo.block_path(stage, e), stats.to_metadata())

        distill_stacked(blocks, zoo.teacher(stage), zoo.recipe, on_chunk_done=persist)
    lazy_seconds = time.perf_counter() - started
    log(f"scoring: blocks ready in {lazy_seconds:.1f} s; scoring")
    started = time.perf_counter()
    scores = score_architectures(zoo, archs)
    score_seconds = time.perf_counter() - started
    accuracies = [s.proxy_accuracy for s in scores]
    return {
        "architectures": len(archs),
        "lazy_blocks_distilled": wanted, "lazy_build_seconds": lazy_seconds,
        "lazy_blocks_per_second": wanted / lazy_seconds if wanted else None,
        "scoring_seconds": score_seconds,
        "architectures_per_second": len(archs) / score_seconds,
        "proxy_accuracy": {"mean": statistics.fmean(accuracies), "min": min(accuracies), "max": max(accuracies)},
    }


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    started = time.perf_counter()
    space = get_space(SPACE)
    shutil.rmtree(WORK / "zoo", ignore_errors=True)
    info = import_builtin("fashion-mnist", WORK / "datasets", seed=0, train_limit=TRAIN_LIMIT)
    store = open_store(info.path)
    x, y = to_tensor_split(store, "train", space.input_size)

    path, meta = find_reference(space, info.content_hash)
    if path is not None:
        reference = load_reference(space, path, x.shape[1], store.num_classes)
        reference_info = {"trained": True, "source": str(path.relative_to(RESULTS.parent.parent)),
                          "test_accuracy": float(meta["test_accuracy"]), "recipe": json.loads(meta.get("recipe", "{}"))}
    else:
        torch.manual_seed(args.seed)
        reference = build_network(space, space.reference, x.shape[1], store.num_classes)
        reference_info = {"trained": False, "source": "untrained (seeded random init)"}
    log(f"reference: {reference_info['source']}")

    recipe = DistillRecipe(seed=args.seed)
    zoo = BlockZoo.create_from_parts(WORK / "zoo", space, reference, KDData.select(x, y, recipe), recipe,
                                     in_channels=x.shape[1], num_classes=store.num_classes,
                                     dataset_hash=info.content_hash)
    distill = time_engines(zoo, args)
    scoring = time_scoring(zoo, args)
    load_after = os.getloadavg()
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)
    return {
        "task": f"zoo speed, {SPACE}, Fashion-MNIST {TRAIN_LIMIT} train images at 16x16",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python -m bench.zoo_speed", *sys.argv[1:]]),
        "recipe": recipe.to_dict(),
        "dataset": {"name": info.name, "content_hash": info.content_hash, "num_train": info.num_train},
        "reference": reference_info,
        "distill": distill,
        "scoring": scoring,
        "wall_seconds": time.perf_counter() - started,
        "torch_threads": torch.get_num_threads(),
        "machine": {"cpu_count": os.cpu_count(), "cpu_model": cpu_model(), "platform": platform.platform(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "load_average_before": list(load_before), "load_average_after": list(load_after)},
    }


def markdown(r: dict) -> str:
    d, s, m = r["distill"], r["scoring"], r["machine"]
    rate, ratio = d["blocks_per_second"], d["ratios"]
    names = {"naive": "(a) naive: teacher recomputed per block, blocks one by one",
             "shared_loop": "(b) shared teacher features, per-block loop engine (`distill_blocks`)",
             "shared_stacked": "(c) shared teacher features, stacked engine (`distill_stacked`)"}
    rows = "\n".join(
        f"| {names[e]} | {sum(d['seconds_per_repeat'][e]):.1f} | {rate[e]:.3f} | "
        + " / ".join(f"{sum(v):.1f}" for v in zip(*d["seconds_per_stage"][e])) + " |"
        for e in ENGINES)
    verdict = "meets" if ratio["shared_loop_over_naive"] >= 2 else "does NOT meet"
    ref = r["reference"]
    ref_text = (f"trained, test accuracy {ref['test_accuracy']:.4f} (`{ref['source']}`)" if ref["trained"]
                else "**untrained** (seeded random init; fine for speed, meaningless proxy accuracies)")
    checks = d["checks"]
    return f"""# Zoo speed: {r['task']}

Acceptance: blocks distilled per second with shared teacher features vs a naive loop that
recomputes teacher features per block; shared must be >= 2x faster. Also architectures scored
per second.

## Block distillation ({d['blocks']} candidate blocks = {d['blocks_per_stage']} per stage, seeded; x {d['repeats']} repeat(s))

| engine | seconds (all repeats) | blocks / s | seconds per stage s1 / s2 / s3 / s4 / s5 (sum of repeats) |
|---|---|---|---|
{rows}

- **shared / naive = {ratio['shared_loop_over_naive']:.2f}x** with the loop engine (per repeat:
  {', '.join(f'{v:.2f}x' for v in d['ratio_per_repeat_shared_loop_over_naive'])}): {verdict} the 2x criterion;
  with the stacked engine **{ratio['shared_stacked_over_naive']:.2f}x**.
- stacked / loop = **{ratio['shared_stacked_over_shared_loop']:.2f}x** (per repeat:
  {', '.join(f'{v:.2f}x' for v in d['ratio_per_repeat_stacked_over_loop'])}).
- Teacher features for all 5 stages and T={r['recipe']['batches']} batches, computed once per repeat and
  charged to both shared engines: {', '.join(f'{v:.1f} s' for v in d['teacher_feature_seconds'])}.
- Same blocks, same init, same batches: naive and loop bit-identical: **{checks['naive_equals_loop_bitwise']}**;
  stacked vs loop, largest relative difference of any tensor after {r['recipe']['batches']} steps, per stage:
  {' / '.join(f'{v:.1e}' for v in checks['stacked_vs_loop_max_relative_difference'])}; control: the loop engine
  against itself with its initial weights perturbed by 1e-7 (stage 5):
  {checks['loop_vs_loop_with_init_perturbed_1e-7_last_stage']:.1e}, i.e. float32 rounding amplified by KD at lr
  {r['recipe']['lr']} (in float64 the engines agree to ~1e-15, `tests/test_stacked.py`). Mean KD loss: loop
  {checks['kd_loss_mean']['shared_loop']:.6f}, stacked {checks['kd_loss_mean']['shared_stacked']:.6f}.

## Scoring

| | |
|---|---|
| architectures (random, seeded) | {s['architectures']} |
| their missing blocks, distilled lazily with the stacked engine | {s['lazy_blocks_distilled']} in {s['lazy_build_seconds']:.1f} s ({(s['lazy_blocks_per_second'] or 0):.2f} blocks/s) |
| `score_architectures` (per level: BN recalibration on the T batches, then the proxy on all KD and held-out images) | {s['scoring_seconds']:.1f} s |
| **architectures scored per second** | **{s['architectures_per_second']:.2f}** |
| proxy accuracy mean / min / max | {s['proxy_accuracy']['mean']:.3f} / {s['proxy_accuracy']['min']:.3f} / {s['proxy_accuracy']['max']:.3f} |

## Setup

| | |
|---|---|
| reference | {ref_text} |
| recipe | `DistillRecipe` defaults: {', '.join(f'{k}={v}' for k, v in r['recipe'].items())} |
| dataset | Fashion-MNIST, {r['dataset']['num_train']} train images, hash `{r['dataset']['content_hash'][:16]}` |
| torch threads | {r['torch_threads']} |
| machine | {m['cpu_count']} CPUs ({m['cpu_model']}), {m['platform']}, Python {m['python']}, torch {m['torch']} |
| load average (1/5/15 min) | before {'/'.join(f'{v:.2f}' for v in m['load_average_before'])}, after {'/'.join(f'{v:.2f}' for v in m['load_average_after'])} |
| wall time | {r['wall_seconds']:.0f} s |
| date | {r['date']} |
| command | `{r['command']}` |

The machine is shared with other engineers' jobs (see the load average), so absolute times are
noisy; the engines ran interleaved stage by stage, with the order rotated, so the ratios compare
like with like. One torch thread: under this load, 2 threads were measured to thrash
(`bench/results/reference_training.md`).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--blocks-per-stage", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--archs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep bench/results/tmp/zoo_speed (dataset, zoo)")
    parser.add_argument("--out", default=str(RESULTS / "zoo_speed"), help="results path without extension")
    args = parser.parse_args()
    result = run(args)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
