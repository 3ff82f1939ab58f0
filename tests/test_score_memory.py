"""Scoring memory is bounded: blocks are distilled a group at a time and loaded blocks are capped
by bytes, with the same blocks and scores as without the bounds. The 1,000-architecture peak is
measured by ``bench/score_memory.py`` (bench/results/score_memory.md); here a moderate count."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from blockzoo.proxy import score_architectures
from blockzoo.space import sample_architectures
from conftest import block_files

ROOT = Path(__file__).resolve().parents[1]
GiB = 1024**3


def test_blocks_distilled_in_small_groups_equal_blocks_distilled_together(make_zoo, tiny_space):
    torch.set_num_threads(1)  # the stacked engine is bit-identical across groupings on one thread
    together, grouped = make_zoo(name="together"), make_zoo(name="grouped")
    grouped.distill_group = 3
    wanted = {0: tiny_space.stage_blocks(0)[:8], 3: tiny_space.stage_blocks(3)[:5]}
    assert together.distill(wanted) == grouped.distill(wanted) == 13
    files = block_files(together)
    assert len(files) == 13 and files == block_files(grouped)


def test_a_tiny_block_cache_keeps_its_bound_and_gives_the_same_scores(make_zoo, tiny_space):
    zoo = make_zoo()
    archs = sample_architectures(tiny_space, 6, seed=3)
    unbounded = score_architectures(zoo, archs)  # distils what they need, then scores
    loaded = zoo._block_cache_nbytes
    zoo._block_cache.clear()
    zoo._block_cache_nbytes = 0
    zoo.limit_memory(loaded // 8)
    assert score_architectures(zoo, archs) == unbounded
    assert zoo._block_cache_nbytes <= loaded // 8 or len(zoo._block_cache) == 1


_SCORE_AND_REPORT = """
import json, sys
import torch
torch.set_num_threads(1)
from blockzoo.pipeline import score_on_zoo
from blockzoo.space import sample_architectures
from blockzoo.zoo import BlockZoo
from bench.score_memory import peak_rss_bytes
zoo = BlockZoo.open(sys.argv[1])
zoo.limit_memory(int(sys.argv[2]))
archs = sample_architectures(zoo.space, int(sys.argv[3]), seed=11)
before = peak_rss_bytes()
run = score_on_zoo(zoo, archs)
print(json.dumps({"peak": peak_rss_bytes(), "before": before, "blocks": run.blocks_distilled,
                  "cache": zoo._block_cache_nbytes}))
"""


def test_scoring_worker_peak_memory_stays_under_the_bound(make_zoo, tiny_space):
    zoo = make_zoo()
    limit = 32 * 1024**2
    done = subprocess.run([sys.executable, "-c", _SCORE_AND_REPORT, str(zoo.root), str(limit), "10"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["blocks"] > 25  # it distilled, the costly part, as well as scored
    assert report["cache"] <= limit
    assert report["peak"] <= 1.5 * GiB, f"peak RSS {report['peak'] / GiB:.2f} GiB"
