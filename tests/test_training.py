"""Supervised training: a killed run resumes to exactly the weights of an uninterrupted one."""

import torch

from blockzoo.nets import build_network
from blockzoo.progress import Cancelled
from blockzoo.training import TrainRecipe, evaluate, train_network

RECIPE = TrainRecipe(epochs=2, batch_size=64, warmup_epochs=0.5, precise_bn_batches=2, seed=3)


def small_arch(space):
    return space.parse("d11111-e2.2.2.2.2")


def fresh(space):
    torch.manual_seed(0)
    return build_network(space, small_arch(space), 1, 10)


def test_resuming_from_the_checkpoint_gives_the_uninterrupted_run(tiny_space, train_tensors, tmp_path):
    x, y = (t[:256] for t in train_tensors)
    whole = fresh(tiny_space)
    done = train_network(whole, x, y, RECIPE, x_test=x, y_test=y, device=torch.device("cpu"))

    checkpoint = tmp_path / "run.pt"
    stopped = fresh(tiny_space)
    try:  # stop at the first epoch boundary, as a killed worker would lose the rest
        train_network(stopped, x, y, RECIPE, checkpoint=checkpoint, device=torch.device("cpu"),
                      should_stop=lambda: True)
        raise AssertionError("should have stopped")
    except Cancelled:
        pass
    assert checkpoint.is_file()
    resumed = fresh(tiny_space)  # a new process: fresh weights, state comes from the checkpoint
    again = train_network(resumed, x, y, RECIPE, x_test=x, y_test=y, checkpoint=checkpoint,
                          device=torch.device("cpu"))
    assert again.steps == done.steps == 8
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert again.test_accuracy == done.test_accuracy


def test_evaluate_does_not_depend_on_the_batch_size_or_memory_layout(tiny_space, train_tensors):
    x, y = (t[:300] for t in train_tensors)
    net = fresh(tiny_space).eval()
    with torch.no_grad():
        expected = int((net(x).argmax(1) == y).sum()) / len(y)
    assert evaluate(net, x, y) == expected == evaluate(net, x, y, batch_size=7)
