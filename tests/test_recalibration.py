"""Grouped BN recalibration (blockzoo.recalibration): T stacked batches in one pass give what
feeding them one at a time with momentum=None gives (outputs and running statistics)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from blockzoo.recalibration import GroupedBatchNorm2d, use_grouped_batchnorm
from blockzoo.training import channels_last, recalibrate_batchnorm


def toy() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Sequential(nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8, affine=False)), nn.Hardswish(),
                        nn.Conv2d(8, 4, 3, stride=2), nn.BatchNorm2d(4))
    for bn in net.modules():  # non-trivial affine parameters and stale running statistics
        if isinstance(bn, nn.BatchNorm2d):
            if bn.affine:
                nn.init.uniform_(bn.weight, 0.5, 2.0)
                nn.init.uniform_(bn.bias, -1.0, 1.0)
            bn.running_mean.fill_(3.0)
    return net.to(memory_format=torch.channels_last)


@pytest.mark.parametrize("chunks", [1, 2, 4])
def test_grouped_pass_equals_batch_by_batch_recalibration(chunks):
    torch.manual_seed(1)
    batches = [channels_last(torch.randn(6, 3, 9, 9) * (1 + i)) for i in range(4)]  # batches with unequal stats
    sequential = toy()
    with torch.no_grad():
        expected_train = [sequential.train()(x) for x in batches]  # as recalibrate_batchnorm feeds them
    recalibrate_batchnorm(sequential, batches)

    grouped = toy()
    bns = use_grouped_batchnorm(grouped)
    assert len(bns) == 3 and all(isinstance(b, GroupedBatchNorm2d) for b in bns)
    for bn in bns:
        bn.start(6)
    grouped.train()
    stacked = torch.cat(batches)
    with torch.no_grad():
        train = torch.cat([grouped(c) for c in stacked.split(len(stacked) // chunks)])
    for bn in bns:
        bn.finish()

    torch.testing.assert_close(train, torch.cat(expected_train), rtol=1e-4, atol=1e-5)
    ours = [m for m in grouped.modules() if isinstance(m, nn.BatchNorm2d)]
    theirs = [m for m in sequential.modules() if isinstance(m, nn.BatchNorm2d)]
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.running_mean, b.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a.running_var, b.running_var, rtol=1e-5, atol=1e-6)
        assert int(a.num_batches_tracked) == int(b.num_batches_tracked) == 4
    with torch.no_grad():
        torch.testing.assert_close(grouped.eval()(stacked), sequential.eval()(stacked), rtol=1e-4, atol=1e-5)


def test_grouped_twins_share_parameters_and_leave_the_source_untouched():
    source = toy()
    before = copy.deepcopy(source.state_dict())
    work = copy.deepcopy(source, {id(p): p for p in source.parameters()})
    bns = use_grouped_batchnorm(work)
    originals = [m for m in source.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns[0].weight is originals[0].weight and bns[0].running_mean is not originals[0].running_mean
    for bn in bns:
        bn.start(2)
    work.train()
    with torch.no_grad():
        work(channels_last(torch.randn(4, 3, 9, 9)))
    for bn in bns:
        bn.finish()
    after = source.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(bns[0].running_mean, originals[0].running_mean)


def test_a_batch_that_is_not_whole_groups_is_refused():
    bn = GroupedBatchNorm2d(3)
    bn.start(4)
    with pytest.raises(ValueError, match="whole groups of 4"):
        bn(torch.randn(6, 3, 2, 2))
    bn.finish()
    assert bn(torch.randn(6, 3, 2, 2)).shape == (6, 3, 2, 2)  # plain BatchNorm2d again


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("memory_format", [torch.channels_last, torch.contiguous_format])
def test_one_grouped_bn_is_bit_identical_to_batch_norm_fed_batch_by_batch(affine, memory_format):
    """The grouped forward writes each group with the out= form of the op F.batch_norm runs: the
    outputs and running statistics must not differ in a single bit from nn.BatchNorm2d's."""
    torch.manual_seed(2)
    reference = nn.BatchNorm2d(5, momentum=None, affine=affine)
    if affine:
        nn.init.uniform_(reference.weight, 0.5, 2.0)
        nn.init.uniform_(reference.bias, -1.0, 1.0)
    grouped = GroupedBatchNorm2d.sharing(reference)
    x = (torch.randn(12, 5, 3, 3) * 4 + 2).contiguous(memory_format=memory_format)
    reference.reset_running_stats()
    reference.train()
    with torch.no_grad():
        expected = torch.cat([reference(b) for b in x.split(3)])
        grouped.start(3)
        grouped.train()
        got = torch.cat([grouped(x[:6]), grouped(x[6:9]), grouped(x[9:])])  # 2 groups, then 1, then 1
        grouped.finish()
    assert torch.equal(got, expected)
    assert torch.equal(grouped.running_mean, reference.running_mean)
    assert torch.equal(grouped.running_var, reference.running_var)
    assert int(grouped.num_batches_tracked) == int(reference.num_batches_tracked) == 4
