"""The analytic cost model equals torch's own measurement, exactly.

The suite checks a few random architectures and the corner cases of each space; the sweep over
202 architectures per space is a benchmark (``python -m bench.cost_model_parity``).
"""

import random
import subprocess
import sys

import pytest

from bench.cost_model_parity import measured_cost
from blockzoo import cost, get_space
from blockzoo.space import Architecture


def corner_architectures(space):
    """The smallest and the largest (the reference) network, and each depth extreme with the
    other extreme of expansion, so every stage is seen at its shallowest and deepest."""
    low_d, high_d = min(space.depth_choices), max(space.depth_choices)
    low_e, high_e = min(space.expand_choices), max(space.expand_choices)
    n = space.num_stages
    mixed_depths = tuple(low_d if m % 2 else high_d for m in range(n))
    return [
        space.smallest, space.reference,
        Architecture((low_d,) * n, ((high_e,) * low_d,) * n),
        Architecture((high_d,) * n, ((low_e,) * high_d,) * n),
        Architecture(mixed_depths, tuple(tuple(high_e if (m + i) % 2 else low_e for i in range(d))
                                         for m, d in enumerate(mixed_depths))),
    ]


@pytest.mark.parametrize("name", ["mbv3-tiny", "mbv3-cifar"])
def test_cost_equals_torch_on_corner_cases_and_random_architectures(name):
    space = get_space(name)
    rng = random.Random(11)
    archs = corner_architectures(space) + [space.sample(rng) for _ in range(6)]
    assert len(set(archs)) == len(archs)
    inputs = [(3, 10), (1, 10), (3, 100), (2, 7)]  # channels and classes other than the defaults too
    for i, arch in enumerate(archs):
        in_channels, num_classes = inputs[i % len(inputs)]
        c = cost(space, arch, in_channels, num_classes)
        assert (c.macs, c.params) == measured_cost(space, arch, in_channels, num_classes), (arch.id, in_channels)


def test_reference_sizes_match_the_paper_scale():
    space = get_space("mbv3-cifar")
    c = cost(space, space.reference, 3, 10)
    assert 220e6 < c.macs < 232e6 and 11.5e6 < c.params < 12.3e6


def test_cost_model_does_not_import_torch():
    code = "import sys, blockzoo, blockzoo.cost_model; blockzoo.cost('mbv3-tiny' and blockzoo.get_space('mbv3-tiny'), 'd11111-e2.2.2.2.2'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
