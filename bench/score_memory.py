"""Peak memory of scoring many architectures on a lazy mbv3-tiny zoo, and the same scores in parts.

    python -m bench.score_memory [--archs 1000] [--parts 10] [--out bench/results/score_memory]

A fresh lazy zoo (synthetic 16×16 data, a briefly trained reference, KD T=4 × 32) is scored
in one call of ``blockzoo.pipeline.score_on_zoo`` with every architecture (distilling the
blocks they need), in a subprocess whose peak RSS (VmHWM) is the figure; a second fresh copy of
the zoo is scored in ``--parts`` calls. The proxy scores must be equal (one torch thread: the
stacked distillation is then bit-identical whatever a block's companions). The memory bound
that the worker applies (``infra.settings``: score_memory_bytes) is passed as in a worker.
Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GiB = 1024**3


def peak_rss_bytes() -> int:
    """This process's peak resident memory (VmHWM: unlike getrusage, not inherited across exec)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))


def make_zoo(root: Path, seed: int = 0) -> Path:
    """A lazy mbv3-tiny zoo without blocks: reference trained on synthetic data, KD batches drawn."""
    import torch

    from blockzoo.data import import_builtin, open_store, to_tensor_split
    from blockzoo.distill import DistillRecipe
    from blockzoo.nets import build_network
    from blockzoo.space import get_space
    from blockzoo.training import TrainRecipe, train_network
    from blockzoo.zoo import BlockZoo, KDData

    torch.set_num_threads(1)
    space = get_space("mbv3-tiny")
    store = open_store(import_builtin("synthetic", root / "datasets", num_images=1600, image_size=16, seed=seed).path)
    x, y = to_tensor_split(store, "train", space.input_size)
    torch.manual_seed(seed)
    reference = build_network(space, space.reference, x.shape[1], store.num_classes)
    train_network(reference, x, y, TrainRecipe(epochs=1, batch_size=64, warmup_epochs=0.2, seed=seed),
                  device=torch.device("cpu"))
    recipe = DistillRecipe(batches=4, batch_size=32, heldout_batches=2, seed=seed)
    BlockZoo.create_from_parts(root / "zoo", space, reference.eval(), KDData.select(x, y, recipe), recipe,
                               in_channels=x.shape[1], num_classes=store.num_classes,
                               dataset_hash=store.meta["content_hash"])
    return root / "zoo"


def score_in_subprocess(zoo: Path, arch_ids: list[str], parts: int, memory_bytes: int) -> dict:
    """Score in a fresh interpreter (``parts`` calls); its peak RSS, time and the scores."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.score_memory", "--child", str(zoo), "--parts", str(parts),
         "--memory-bytes", str(memory_bytes)],
        input=json.dumps(arch_ids), capture_output=True, text=True, cwd=ROOT, check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
    )
    if done.returncode != 0:
        raise RuntimeError(f"scoring subprocess failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _child(zoo_path: Path, parts: int, memory_bytes: int) -> None:
    import torch

    from blockzoo.pipeline import score_on_zoo
    from blockzoo.zoo import BlockZoo

    torch.set_num_threads(1)
    arch_ids = json.loads(sys.stdin.read())
    zoo = BlockZoo.open(zoo_path)
    zoo.limit_memory(memory_bytes)  # as the worker does (infra.settings: score_memory_bytes)
    space = zoo.space
    archs = [space.parse(a) for a in arch_ids]
    baseline = peak_rss_bytes()
    started = time.perf_counter()
    values: dict[str, float | None] = {}
    size = -(-len(archs) // parts)
    for start in range(0, len(archs), size):
        run = score_on_zoo(zoo, archs[start:start + size])
        values.update({a: v for (a, m), v in run.values.items() if m == "proxy_accuracy"})
    print(json.dumps({"peak_rss_bytes": peak_rss_bytes(), "rss_after_imports_bytes": baseline,
                      "seconds": time.perf_counter() - started, "blocks": zoo.stored_blocks(),
                      "scores": values}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, default=1000)
    parser.add_argument("--parts", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-bytes", type=int, default=None, help="default: the worker's setting")
    parser.add_argument("--bound-gib", type=float, default=1.5, help="peak RSS the one-call run must stay under")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "score_memory")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        _child(args.child, args.parts, args.memory_bytes)
        return 0

    from blockzoo.space import get_space, sample_architectures
    from infra.settings import Settings

    memory_bytes = args.memory_bytes if args.memory_bytes is not None else Settings().score_memory_bytes
    arch_ids = [a.id for a in sample_architectures(get_space("mbv3-tiny"), args.archs, seed=args.seed)]
    with tempfile.TemporaryDirectory(prefix="score-memory-") as tmp:
        fresh = make_zoo(Path(tmp) / "made", args.seed)
        runs = {}
        for name, parts in (("one_call", 1), ("in_parts", args.parts)):
            zoo = Path(tmp) / name
            shutil.copytree(fresh, zoo)  # each run distils its own blocks
            runs[name] = score_in_subprocess(zoo, arch_ids, parts, memory_bytes)
    one, split = runs["one_call"], runs["in_parts"]
    equal = one["scores"] == split["scores"]
    report = {
        "architectures": args.archs, "parts": args.parts, "score_memory_bytes": memory_bytes,
        "bound_bytes": int(args.bound_gib * GiB), "scores_equal": equal,
        "runs": {name: {k: v for k, v in run.items() if k != "scores"} for name, run in runs.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    command = " ".join(["python -m bench.score_memory", *(argv if argv is not None else sys.argv[1:])])
    lines = [
        f"# Scoring memory: {args.archs} architectures, lazy mbv3-tiny zoo (KD T=4 × 32, one torch thread)", "",
        f"Command: `{command}`", "",
        f"Worker memory setting score_memory_bytes = {memory_bytes / 2**20:.0f} MiB; bound {args.bound_gib} GiB.", "",
        "| run | calls | peak RSS | RSS after imports | blocks distilled | seconds |", "|---|---|---|---|---|---|",
    ]
    for name, parts in (("one_call", 1), ("in_parts", args.parts)):
        run = runs[name]
        lines.append(f"| {name} | {parts} | {run['peak_rss_bytes'] / GiB:.2f} GiB | "
                     f"{run['rss_after_imports_bytes'] / GiB:.2f} GiB | {run['blocks']} | {run['seconds']:.0f} |")
    lines += ["", f"Proxy scores equal between the two runs: **{equal}** ({len(one['scores'])} architectures)."]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    ok = equal and one["peak_rss_bytes"] <= report["bound_bytes"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
