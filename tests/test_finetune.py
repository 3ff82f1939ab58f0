"""Fine-tuning from distilled weights (paper Fig. 3) and its baselines."""

import random

import pytest
import torch

from blockzoo.distill import DistillRecipe
from blockzoo.finetune import finetune, initial_network
from blockzoo.nets import build_network
from blockzoo.training import TrainRecipe


def test_zoo_init_starts_far_above_scratch_and_finetuning_keeps_it(make_zoo, tiny_space, synthetic_store, tmp_path):
    zoo = make_zoo(DistillRecipe(batches=10, batch_size=32, heldout_batches=0, seed=0))
    arch = tiny_space.sample(random.Random(2))
    recipe = TrainRecipe(epochs=0.5, batch_size=64, warmup_epochs=0, seed=0)
    out = tmp_path / "ft.safetensors"
    from_zoo = finetune(zoo, arch, synthetic_store, recipe, init="zoo", out_path=out, device=torch.device("cpu"))
    scratch = finetune(zoo, arch, synthetic_store, recipe, init="scratch", device=torch.device("cpu"))
    assert from_zoo.initial_test_accuracy > scratch.initial_test_accuracy + 0.2
    assert from_zoo.test_accuracy >= scratch.test_accuracy
    assert from_zoo.steps == scratch.steps > 0
    # The written weights rebuild with build_network and are the fine-tuned ones.
    from safetensors.torch import load_file
    net = build_network(tiny_space, arch, zoo.in_channels, zoo.num_classes)
    net.load_state_dict(load_file(str(out)))
    assert not (tmp_path / "ft.checkpoint.pt").exists()


def test_remap_init_is_the_pr_network_and_bad_inits_are_refused(make_zoo, tiny_space):
    zoo = make_zoo()
    arch = tiny_space.sample(random.Random(4))
    pr = initial_network(zoo, arch, "remap")
    assert torch.equal(pr.stages[0][0].expand.conv.weight,
                       zoo.reference.stages[0][0].expand.conv.weight[: pr.stages[0][0].spec.hidden_channels])
    with pytest.raises(ValueError, match="init must be one of"):
        initial_network(zoo, arch, "imagenet")
