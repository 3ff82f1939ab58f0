"""The analytic cost model equals torch's own measurement, exactly."""

import random
import sys
import subprocess

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from blockzoo import build_network, cost, get_space


def measured(space, arch, in_channels, num_classes):
    # On the meta device torch runs shapes only: the count is torch's, without the arithmetic.
    with torch.device("meta"):
        net = build_network(space, arch, in_channels, num_classes).eval()
        x = torch.zeros(1, in_channels, space.input_size, space.input_size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x)
    return counter.get_total_flops() // 2, sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("name", ["mbv3-tiny", "mbv3-cifar"])
def test_cost_equals_torch_for_200_random_architectures(name):
    space = get_space(name)
    rng = random.Random(11)
    archs = [space.reference, space.smallest] + [space.sample(rng) for _ in range(200)]
    for i, arch in enumerate(archs):
        in_channels, num_classes = (1, 10) if i % 2 else (3, 100)
        c = cost(space, arch, in_channels, num_classes)
        assert (c.macs, c.params) == measured(space, arch, in_channels, num_classes), arch.id


def test_reference_sizes_match_the_paper_scale():
    space = get_space("mbv3-cifar")
    c = cost(space, space.reference, 3, 10)
    assert 220e6 < c.macs < 232e6 and 11.5e6 < c.params < 12.3e6


def test_cost_model_does_not_import_torch():
    code = "import sys, blockzoo, blockzoo.cost_model; blockzoo.cost('mbv3-tiny' and blockzoo.get_space('mbv3-tiny'), 'd11111-e2.2.2.2.2'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
