"""Parameter remapping (Eq. 1–2): every slice, and the reference assembled from PR is the reference."""

import random

import pytest
import torch

from blockzoo.nets import build_network
from blockzoo.remap import remap_block, remap_network, reorder_channels
from blockzoo.space import get_space


@pytest.fixture(scope="module")
def reference():
    space = get_space("mbv3-tiny")
    torch.manual_seed(0)
    net = build_network(space, space.reference, 3, 10)
    # Non-trivial BN statistics and affine parameters, so that slicing them is visible.
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5); m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.5, 0.5); m.running_var.uniform_(0.5, 2.0)
    return space, net.eval()


def test_reference_from_pr_weights_is_identical(reference):
    space, net = reference
    candidate = remap_network(space, net, space.reference).eval()
    x = torch.randn(8, 3, 16, 16)
    with torch.no_grad():
        assert (candidate(x) - net(x)).abs().max().item() < 1e-5


@pytest.mark.parametrize("stage", range(5))
def test_every_pr_slice(reference, stage):
    space, net = reference
    rng = random.Random(stage)
    for _ in range(5):
        expand = tuple(rng.choice(space.expand_choices) for _ in range(rng.choice(space.depth_choices)))
        block = remap_block(space, stage, expand, net.stages[stage])
        assert len(block) == len(expand)  # layer-wise: the first O layers
        for o, (cand, ref) in enumerate(zip(block, net.stages[stage])):
            k = cand.spec.hidden_channels
            assert k == space.stage_in_channels(stage) * expand[o] if o == 0 else space.widths[stage] * expand[o]
            eq = torch.equal
            assert eq(cand.expand.conv.weight, ref.expand.conv.weight[:k])
            for name in ("weight", "bias", "running_mean", "running_var"):
                assert eq(getattr(cand.expand.bn, name), getattr(ref.expand.bn, name)[:k])
                assert eq(getattr(cand.depthwise.bn, name), getattr(ref.depthwise.bn, name)[:k])
                assert eq(getattr(cand.project.bn, name), getattr(ref.project.bn, name))
            assert eq(cand.depthwise.conv.weight, ref.depthwise.conv.weight[:k])
            assert eq(cand.project.conv.weight, ref.project.conv.weight[:, :k])
            if space.use_se[stage]:
                s = cand.spec.se_channels
                assert eq(cand.se.reduce.weight, ref.se.reduce.weight[:s, :k])
                assert eq(cand.se.reduce.bias, ref.se.reduce.bias[:s])
                assert eq(cand.se.expand.weight, ref.se.expand.weight[:k, :s])
                assert eq(cand.se.expand.bias, ref.se.expand.bias[:k])


def test_l1_reordering_keeps_the_function_and_sorts_importance(reference):
    space, net = reference
    reordered = reorder_channels(net, "l1").eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(reordered(x), net(x), atol=1e-5)
    layer = reordered.stages[1][0]
    importance = layer.project.conv.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(importance[:-1] >= importance[1:])
    # The first-K slice of an l1-ordered reference differs from the plain one.
    plain = remap_block(space, 1, (2,), net.stages[1])
    l1 = remap_block(space, 1, (2,), reordered.stages[1])
    assert not torch.equal(plain[0].expand.conv.weight, l1[0].expand.conv.weight)
    with pytest.raises(ValueError, match="remap_order"):
        reorder_channels(net, "random")
