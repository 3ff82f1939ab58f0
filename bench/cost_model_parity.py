"""The analytic cost model against torch's own count, on many random architectures.

``blockzoo.cost`` (pure Python) must equal, exactly, the MACs that ``torch.utils.flop_counter``
counts (its FLOPs / 2) and the parameters ``net.parameters()`` holds, for every architecture of
every space. The suite checks a few architectures and the corner cases
(``tests/test_cost_model.py``); this sweep checks the reference, the smallest network and 200
random draws per space (``random.Random(11)``), alternating 1-channel/10-class and
3-channel/100-class inputs.

    .venv/bin/python -m bench.cost_model_parity     # writes bench/results/cost_model_parity.{md,json}
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from blockzoo import build_network, cost, get_space
from blockzoo.files import write_atomic
from blockzoo.space import Architecture, SearchSpace

from bench.benchutil import cpu_model

RESULTS = Path(__file__).resolve().parent / "results"
SPACES = ("mbv3-tiny", "mbv3-cifar")
INPUTS = ((3, 100), (1, 10))  # (in_channels, num_classes), alternating over the architectures


def measured_cost(space: SearchSpace, arch: Architecture, in_channels: int, num_classes: int) -> tuple[int, int]:
    """(MACs, params) as torch counts them for one forward pass of one image."""
    # On the meta device torch runs shapes only: the count is torch's, without the arithmetic.
    with torch.device("meta"):
        net = build_network(space, arch, in_channels, num_classes).eval()
        x = torch.zeros(1, in_channels, space.input_size, space.input_size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x)
    return counter.get_total_flops() // 2, sum(p.numel() for p in net.parameters())


def sweep_architectures(space: SearchSpace, count: int, seed: int = 11) -> list[Architecture]:
    rng = random.Random(seed)
    return [space.reference, space.smallest] + [space.sample(rng) for _ in range(count)]


def check_space(name: str, count: int) -> dict[str, Any]:
    space = get_space(name)
    mismatches, started = [], time.perf_counter()
    archs = sweep_architectures(space, count)
    for i, arch in enumerate(archs):
        in_channels, num_classes = INPUTS[i % 2]
        analytic = cost(space, arch, in_channels, num_classes)
        torch_count = measured_cost(space, arch, in_channels, num_classes)
        if (analytic.macs, analytic.params) != torch_count:
            mismatches.append({"arch": arch.id, "in_channels": in_channels, "num_classes": num_classes,
                               "analytic": [analytic.macs, analytic.params], "torch": list(torch_count)})
    seconds = time.perf_counter() - started
    return {"space": name, "architectures": len(archs), "mismatches": mismatches, "seconds": seconds,
            "seconds_per_architecture": seconds / len(archs)}


def markdown(result: dict[str, Any]) -> str:
    lines = ["# Cost model parity: `blockzoo.cost` against torch's count", "",
             f"Generated {result['date']} by `{result['command']}` on {result['machine']['cpu']} "
             f"(load {result['machine']['load_average'][0]:.1f}).", "",
             "| space | architectures | mismatches | seconds | seconds / architecture |", "|---|---|---|---|---|"]
    for r in result["spaces"]:
        lines.append(f"| `{r['space']}` | {r['architectures']} | {len(r['mismatches'])} | {r['seconds']:.0f} "
                     f"| {r['seconds_per_architecture']:.2f} |")
    lines += ["", "MACs and parameters agree exactly for every architecture." if result["all_equal"]
              else "**Mismatches found**: see the JSON for each architecture and both counts.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.cost_model_parity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="random architectures per space")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    spaces = [check_space(name, args.count) for name in SPACES]
    result = {
        "spaces": spaces, "all_equal": not any(r["mismatches"] for r in spaces),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python -m bench.cost_model_parity", *(sys.argv[1:] if argv is None else argv)]),
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()),
                    "python": platform.python_version(), "torch": torch.__version__},
    }
    write_atomic(args.out / "cost_model_parity.json", json.dumps(result, indent=1) + "\n")
    write_atomic(args.out / "cost_model_parity.md", markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    sys.exit(0 if main()["all_equal"] else 1)
