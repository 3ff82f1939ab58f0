"""Ground-truth trainings outside a protocol: K architectures × SC seeds, resumable and cached
(``blockzoo.validation.groundtruth``) in the proxy-quality benchmark's cache, so a pilot of a
recipe shares its results with the protocols that use the same recipe.

    .venv/bin/python -m bench.ground_truth --help
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from blockzoo.data import import_builtin, open_store
from blockzoo.space import get_space
from blockzoo.validation.design import resized_space, uniform
from blockzoo.validation.groundtruth import GroundTruth, GroundTruthRecipe, Training

from bench.proxy_quality.workspace import CHECKPOINTS, GROUNDTRUTH_CACHE, WORK


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ground_truth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="mbv3-tiny")
    parser.add_argument("--input-size", type=int, default=None, help="override the space's input size")
    parser.add_argument("--train-limit", type=int, default=None, help="Fashion-MNIST training subset")
    parser.add_argument("--arch-seed", type=int, required=True, help="seed of the sampled architectures")
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--recipe", default="{}", help="GroundTruthRecipe fields as JSON")
    parser.add_argument("--budget-minutes", type=float, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    space = resized_space(get_space(args.space), args.input_size)
    options = {} if args.train_limit is None else {"train_limit": args.train_limit}
    info = import_builtin("fashion-mnist", WORK / "datasets", seed=0, **options)
    gt = GroundTruth(space, open_store(info.path), GroundTruthRecipe.from_dict(json.loads(args.recipe)),
                     cache_dir=GROUNDTRUTH_CACHE, checkpoint_dir=CHECKPOINTS,
                     log=lambda m: print(m, file=sys.stderr, flush=True))
    archs = uniform(space, args.k, args.arch_seed)
    trainings = [Training(a, "SC", s) for a in archs for s in args.seeds]  # seed pairs first: the ceiling
    deadline = time.time() + 60 * args.budget_minutes if args.budget_minutes else None
    done, remaining = gt.run_all(trainings, deadline)
    print(json.dumps({"done": done, "remaining": remaining}))


if __name__ == "__main__":
    main()
