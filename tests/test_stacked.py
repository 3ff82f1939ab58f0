"""The stacked distillation engine (blockzoo.distill.stacked) against the per-block engine (blockzoo.distill).

Exactness is checked in float64, where rounding cannot hide a wrong gradient: after several
SGD steps at the recipe's lr 0.1 both engines agree to ~1e-15. In float32 a few KD steps at
lr 0.1 amplify rounding ~1e4-fold (the per-block engine itself moves ~1e-3 when its initial
weights are perturbed by 1e-7), so float32 is compared after one step.
"""

from __future__ import annotations

import copy
import random

import pytest
import torch
from torch import nn

from blockzoo.distill import DistillRecipe, StageTeacher, distill_blocks, teacher_features
from blockzoo.nets import build_block, build_network, init_weights
from blockzoo.progress import Cancelled
from blockzoo.remap import remap_block
from blockzoo.space import get_space
from blockzoo.distill.stacked import StackedBlocks, candidate_activation_bytes, distill_stacked, plan_chunks

SPACE = get_space("mbv3-tiny")
RECIPE = DistillRecipe(batches=3, batch_size=8)  # the default optimizer: SGD, lr 0.1, momentum 0.9


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _reference(dtype: torch.dtype):
    torch.manual_seed(0)
    net = build_network(SPACE, SPACE.reference, 1, 10).to(dtype)
    for bn in net.modules():  # a reference that has been trained: non-trivial BN state
        if isinstance(bn, nn.BatchNorm2d):
            bn.num_batches_tracked.fill_(7)
            bn.running_var.uniform_(0.5, 2.0)
    return net


@pytest.fixture(scope="module")
def setup64():
    reference = _reference(torch.float64)
    batches = [torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(t), dtype=torch.float64)
               for t in range(RECIPE.batches)]
    return reference, teacher_features(reference, batches)


@pytest.fixture(scope="module")
def setup32():
    reference = _reference(torch.float32)
    batches = [torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(t)) for t in range(RECIPE.batches)]
    return reference, teacher_features(reference, batches)


def _candidates(stage: int, count: int = 3, seed: int = 0) -> list[tuple[int, ...]]:
    """Random candidate blocks plus the two extremes (depth 1 and the reference's shape)."""
    rng = random.Random(seed * 100 + stage)
    return rng.sample(SPACE.stage_blocks(stage), count) + [(2,), (10, 10, 10, 10)]


def _remapped(reference, stage, expands):
    dtype = next(reference.parameters()).dtype
    return {e: remap_block(SPACE, stage, e, reference.stages[stage]).to(dtype) for e in expands}


def _max_relative_difference(a: nn.Module, b: nn.Module) -> float:
    worst = 0.0
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        if name.endswith("num_batches_tracked"):
            assert torch.equal(x, y), name
            continue
        scale = max(1.0, x.abs().max().item())
        worst = max(worst, (x - y).abs().max().item() / scale)
    return worst


@pytest.mark.parametrize("stage", range(SPACE.num_stages))
def test_stacked_equals_per_block_engine_on_every_stage(setup64, stage):
    # Stage 1: no SE, residual on the shared input in layer 0; stage 2: SE; stage 4: stride 1,
    # no layer-0 residual; stages 3 and 5: stride 2, h-swish, with and without SE.
    reference, teachers = setup64
    loop = _remapped(reference, stage, _candidates(stage))
    stacked = copy.deepcopy(loop)
    loop_stats = distill_blocks(loop, teachers[stage], RECIPE)
    stacked_stats = distill_stacked(stacked, teachers[stage], RECIPE)
    assert list(stacked_stats) == list(loop_stats)
    for e in loop:
        assert _max_relative_difference(loop[e], stacked[e]) < 1e-9, e
        for field in ("kd_loss", "first_loss", "last_loss"):
            assert getattr(stacked_stats[e], field) == pytest.approx(getattr(loop_stats[e], field), rel=1e-12)
        assert stacked_stats[e].steps == loop_stats[e].steps == RECIPE.batches
        assert all(bn.num_batches_tracked.item() == 7 + RECIPE.batches
                   for bn in stacked[e].modules() if isinstance(bn, nn.BatchNorm2d))


def test_random_init_adam_and_weight_decay_match_per_block_engine(setup64):
    _, teachers = setup64
    recipe = DistillRecipe(batches=3, batch_size=8, optimizer="adam", lr=0.01, weight_decay=1e-4, init="random")
    for stage in (1, 4):  # SE, ReLU and h-swish
        loop = {}
        for i, e in enumerate(_candidates(stage, seed=1)):
            torch.manual_seed(i)
            loop[e] = build_block(SPACE, stage, e).double()
            init_weights(loop[e])
        stacked = copy.deepcopy(loop)
        loop_stats = distill_blocks(loop, teachers[stage], recipe)
        stacked_stats = distill_stacked(stacked, teachers[stage], recipe)
        for e in loop:
            assert _max_relative_difference(loop[e], stacked[e]) < 1e-9, (stage, e)
            assert stacked_stats[e].kd_loss == pytest.approx(loop_stats[e].kd_loss, rel=1e-12)


@pytest.mark.parametrize("stage", range(SPACE.num_stages))
def test_float32_one_step_matches_per_block_engine(setup32, stage):
    reference, teachers = setup32
    recipe = DistillRecipe(batches=1, batch_size=8)
    loop = _remapped(reference, stage, _candidates(stage))
    stacked = copy.deepcopy(loop)
    loop_stats = distill_blocks(loop, teachers[stage], recipe)
    stacked_stats = distill_stacked(stacked, teachers[stage], recipe)
    for e in loop:
        assert stacked_stats[e].first_loss == pytest.approx(loop_stats[e].first_loss, rel=1e-5)
        assert _max_relative_difference(loop[e], stacked[e]) < 1e-3, e


@pytest.mark.parametrize("stage", range(SPACE.num_stages))
def test_a_candidate_trained_alone_is_bit_identical_to_it_trained_in_a_stack(setup32, stage):
    # One thread (module fixture): lazily and eagerly built blocks must be the same bytes.
    reference, teachers = setup32
    expands = _candidates(stage, count=4, seed=2)
    together = _remapped(reference, stage, expands)
    together_stats = distill_stacked(together, teachers[stage], RECIPE)
    for e in expands[::2]:
        alone = _remapped(reference, stage, [e])
        assert distill_stacked(alone, teachers[stage], RECIPE)[e] == together_stats[e]
        for (name, a), b in zip(alone[e].state_dict().items(), together[e].state_dict().values()):
            assert torch.equal(a, b), (e, name)


def test_candidates_in_a_stack_never_see_each_other(setup32):
    """Poison every other candidate (NaN in all its tensors): one candidate's output and
    gradients stay those of its block run alone, and a depth-1 candidate never depends on
    layers 2-4 of the deeper ones."""
    reference, teachers = setup32
    x, y = teachers[1].inputs[0], teachers[1].targets[0]
    expands = [(10, 6, 4, 8), (2,), (6, 6), (4, 10, 2), (2, 8, 8, 8)]
    blocks = list(_remapped(reference, 1, expands).values())
    for watched in (1, 3):  # a depth-1 and a depth-3 candidate
        stack = StackedBlocks([copy.deepcopy(b) for b in blocks])
        with torch.no_grad():
            for g in range(len(blocks)):
                if g != watched:
                    for o, layer in enumerate(blocks[g]):
                        for name in layer.state_dict():
                            if not name.endswith("num_batches_tracked"):
                                stack._slot(o, name, g).fill_(float("nan"))
        losses = stack.losses(x, y)
        assert torch.isnan(losses).sum() == len(blocks) - 1
        losses.sum().backward()

        alone = copy.deepcopy(blocks[watched]).train()
        out = alone(x)
        torch.testing.assert_close(stack.outputs(x)[watched], out, rtol=1e-5, atol=1e-5)
        torch.nn.functional.mse_loss(out, y).backward()
        for o, layer in enumerate(alone):
            for name, param in layer.named_parameters():
                grad = stack._slot(o, name, watched, grad=True)
                assert torch.isfinite(grad).all(), (watched, o, name)
                torch.testing.assert_close(grad, param.grad, rtol=1e-4, atol=1e-6)


def test_chunks_report_progress_persist_in_place_and_stop_between_chunks(setup64):
    reference, teachers = setup64
    expands = _candidates(2, count=4)
    x = teachers[2].inputs[0]
    one_each = min(candidate_activation_bytes(b, x.shape[0], x.shape[-1])
                   for b in _remapped(reference, 2, expands).values())
    whole = _remapped(reference, 2, expands)
    whole_stats = distill_stacked(whole, teachers[2], RECIPE)

    chunked = _remapped(reference, 2, expands)
    seen: list[list] = []
    stats = distill_stacked(chunked, teachers[2], RECIPE, on_chunk_done=lambda s: seen.append(list(s)),
                            memory_budget=2 * one_each, max_group=3)
    assert len(seen) > 2 and [k for chunk in seen for k in chunk] == expands
    assert all(len(chunk) <= 3 for chunk in seen)
    for e in expands:  # chunking changes nothing
        assert _max_relative_difference(whole[e], chunked[e]) < 1e-12
        assert stats[e].kd_loss == pytest.approx(whole_stats[e].kd_loss, rel=1e-12)

    initial = _remapped(reference, 2, expands)
    stopped = copy.deepcopy(initial)
    done: list = []
    with pytest.raises(Cancelled):
        distill_stacked(stopped, teachers[2], RECIPE, should_stop=lambda: True,
                        on_chunk_done=lambda s: done.extend(s), max_group=2)
    assert done == expands[:2]
    for e in expands:
        changed = any(not torch.equal(a, b) for a, b in zip(initial[e].state_dict().values(),
                                                             stopped[e].state_dict().values()))
        assert changed == (e in done), e


def test_zero_steps_leave_blocks_untouched(setup64):
    reference, teachers = setup64
    blocks = _remapped(reference, 0, [(2, 4), (6,)])
    before = copy.deepcopy(blocks)
    stats = distill_stacked(blocks, StageTeacher([], []), RECIPE)
    for e, block in blocks.items():
        assert stats[e].steps == 0 and stats[e].kd_loss != stats[e].kd_loss  # nan, as distill_blocks
        assert _max_relative_difference(before[e], block) == 0


def test_blocks_of_different_stages_are_refused():
    with pytest.raises(ValueError, match="different stages"):
        StackedBlocks([build_block(SPACE, 1, (2, 4)), build_block(SPACE, 2, (2, 4))])
    with pytest.raises(TypeError, match="MBConv"):
        StackedBlocks([nn.Sequential(nn.Conv2d(8, 8, 1))])


@pytest.mark.parametrize("stage", [0, 1, 4])  # ReLU without SE, ReLU with SE, h-swish with SE
def test_activation_estimate_bounds_what_autograd_saves(stage):
    torch.manual_seed(0)
    rng = random.Random(stage)
    blocks = [build_block(SPACE, stage, e) for e in rng.sample(SPACE.stage_blocks(stage), 6)]
    size, out = SPACE.output_size(stage - 1), SPACE.output_size(stage)
    x = torch.randn(32, SPACE.stage_in_channels(stage), size, size)
    stack = StackedBlocks(blocks)
    parameters = {p.untyped_storage().data_ptr() for p in stack.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        stack.losses(x, torch.randn(32, SPACE.widths[stage], out, out))
    estimate = sum(candidate_activation_bytes(b, x.shape[0], x.shape[-1]) for b in blocks)
    # Within a few percent: per-channel BN statistics and the shared input are not counted.
    assert 0.95 <= estimate / sum(saved.values()) < 1.25


def test_memory_budget_splits_mbv3_cifar_stage_1_at_batch_64():
    space = get_space("mbv3-cifar")
    with torch.device("meta"):  # shapes only; every 4th candidate (incl. the widest) keeps it fast
        blocks = [build_block(space, 0, e) for e in space.stage_blocks(0)[::-4]]
    chunks = plan_chunks(blocks, batch_size=64, input_size=32)
    assert [i for chunk in chunks for i in chunk] == list(range(len(blocks)))
    for chunk in chunks:
        need = sum(candidate_activation_bytes(blocks[i], 64, 32) for i in chunk)
        assert need <= 1 << 30 or len(chunk) == 1
    assert max(len(c) for c in chunks) > 1  # small candidates still share a chunk
