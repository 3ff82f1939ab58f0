"""Zero-cost baselines (DESIGN §4): each proxy against an independent or hand computation on a toy net."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from blockzoo.cost_model import cost
from blockzoo.nets import build_network
from blockzoo.space import get_space, sample_architectures
from blockzoo.zerocost import METRICS, ZeroCostScores, compute_metric, measure_metric, score_zero_cost


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread avoids spin-wait contention on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _toy_net(act: nn.Module | None = None) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), act or nn.ReLU(), nn.Flatten(),
                         nn.Linear(3 * 4 * 4, 5))


def _batches(count: int = 2, n: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(n, 2, 4, 4, generator=g), torch.randint(0, 5, (n,), generator=g))
            for _ in range(count)]


def _weight_grads(net: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
    weights = [net[0].weight, net[3].weight]
    grads = torch.autograd.grad(F.cross_entropy(net(x), y), weights)
    return list(zip(weights, grads))


def test_metric_names_are_the_design_list_and_unknown_names_are_refused():
    assert METRICS == ("gradnorm", "snip", "fisher", "synflow", "naswot", "l2norm", "flops", "params")
    with pytest.raises(ValueError, match="known metrics.*gradnorm.*params"):
        compute_metric("jacov", _toy_net(), _batches())
    with pytest.raises(ValueError, match="known metrics"):
        score_zero_cost(get_space("mbv3-tiny"), [], ["gradnorm", "zen"], _batches(), 2, 5)


def test_gradnorm_is_the_sum_of_per_layer_gradient_norms_averaged_over_batches():
    net, batches = _toy_net(), _batches()
    expected = np.mean([sum(float(g.norm()) for _, g in _weight_grads(net, x, y)) for x, y in batches])
    assert compute_metric("gradnorm", net, batches) == pytest.approx(expected, rel=1e-5)


def test_snip_is_the_sum_of_abs_weight_times_gradient():
    net, batches = _toy_net(), _batches()
    expected = np.mean([sum(float((w * g).abs().sum().detach()) for w, g in _weight_grads(net, x, y))
                        for x, y in batches])
    assert compute_metric("snip", net, batches) == pytest.approx(expected, rel=1e-5)


def test_fisher_matches_retain_grad_on_the_layer_outputs_even_with_an_inplace_activation():
    # In-place h-swish right after the conv (as in SE and the head): z must be the conv output.
    net, batches = _toy_net(nn.Hardswish(inplace=True)), _batches()
    conv, lin = net[0], net[3]
    expected = []
    for x, y in batches:
        z1 = conv(x)
        z1.retain_grad()
        z2 = lin(torch.flatten(F.hardswish(z1), 1))
        z2.retain_grad()
        F.cross_entropy(z2, y).backward()
        f1 = 0.5 * ((z1 * z1.grad).sum((2, 3)) ** 2).mean(0)   # per conv channel
        f2 = 0.5 * ((z2 * z2.grad) ** 2).mean(0)                # per linear output
        expected.append(float((f1.sum() + f2.sum()).detach()))
    net.zero_grad(set_to_none=True)
    assert compute_metric("fisher", net, batches) == pytest.approx(np.mean(expected), rel=1e-5)


def _two_layer_linear_with_bn() -> nn.Sequential:
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(4, 3, bias=False), nn.BatchNorm1d(3), nn.Linear(3, 2, bias=False))
    with torch.no_grad():  # a BN that is not the identity, so that a BN left in would change R
        net[1].weight.fill_(3.0)
        net[1].bias.fill_(-5.0)
        net[1].running_mean.fill_(2.0)
        net[1].running_var.fill_(9.0)
    return net


def test_synflow_of_a_bias_free_two_layer_linear_net_is_twice_the_path_sum_with_bn_bypassed():
    net = _two_layer_linear_with_bn()
    w1, w2 = net[0].weight.detach().double().abs(), net[2].weight.detach().double().abs()
    r = float(torch.ones(2, dtype=torch.float64) @ w2 @ w1 @ torch.ones(4, dtype=torch.float64))
    # ∂R/∂|W1|_ij = Σ_k |W2|_ki, so Σ|W1 ⊙ ∂R/∂W1| = R, and the same for W2: the score is 2R.
    batches = [(torch.randn(5, 4), torch.zeros(5, dtype=torch.long))]
    assert compute_metric("synflow", net, batches) == pytest.approx(2 * r, rel=1e-12)


def test_synflow_overflow_is_the_worst_score_and_is_counted():
    net = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 2, bias=False)).double()
    with torch.no_grad():
        for m in net:
            m.weight.fill_(1e200)  # representable in float64, but R = 32·10^400 overflows
    result = measure_metric("synflow", net, [(torch.ones(3, 4), torch.zeros(3, dtype=torch.long))])
    assert result.value == float("-inf") and result.nonfinite == 1


def _naswot_numpy(codes_per_layer: list[np.ndarray]) -> float:
    k = sum(c @ c.T + (1 - c) @ (1 - c).T for c in codes_per_layer)
    return float(np.linalg.slogdet(k)[1])


def test_naswot_on_hand_made_codes_matches_numpy_and_hamming_form():
    # Flatten -> ReLU: the ReLU's pre-activation is the input itself, so the codes are hand-made.
    codes = np.array([[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 0]], dtype=np.float64)
    x = torch.tensor(np.where(codes > 0, 1.0, -1.0), dtype=torch.float32).reshape(3, 1, 2, 2)
    net = nn.Sequential(nn.Flatten(), nn.ReLU(inplace=True))
    value = compute_metric("naswot", net, [(x, torch.zeros(3, dtype=torch.long))])
    # K_ij = units - hamming(i, j) = [[4,1,1],[1,4,2],[1,2,4]]; det K = 4·12 - 1·2 + 1·(-2) = 44
    assert np.allclose(codes @ codes.T + (1 - codes) @ (1 - codes).T, [[4, 1, 1], [1, 4, 2], [1, 2, 4]])
    assert value == pytest.approx(math.log(44.0), rel=1e-12)
    assert value == pytest.approx(_naswot_numpy([codes]), rel=1e-12)


def test_naswot_includes_hswish_layers_and_uses_the_first_batch_size_samples():
    torch.manual_seed(3)
    lin = nn.Linear(6, 5)
    net = nn.Sequential(nn.ReLU(), lin, nn.Hardswish())
    g = torch.Generator().manual_seed(4)
    x = torch.randn(9, 6, generator=g)
    batches = [(x, torch.zeros(9, dtype=torch.long))]
    xs = x[:4].numpy().astype(np.float64)
    hidden = np.maximum(xs, 0) @ lin.weight.detach().double().numpy().T + lin.bias.detach().double().numpy()
    expected = _naswot_numpy([(xs > 0).astype(np.float64), (hidden > 0).astype(np.float64)])
    assert compute_metric("naswot", net, batches, naswot_batch_size=4) == pytest.approx(expected, rel=1e-10)
    without_hswish = _naswot_numpy([(xs > 0).astype(np.float64)])
    assert expected != pytest.approx(without_hswish)


def test_naswot_on_mbv3_tiny_matches_numpy_codes_of_every_relu_and_hswish_input():
    space = get_space("mbv3-tiny")
    torch.manual_seed(0)
    net = build_network(space, space.reference, 1, 10)
    x = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(9))
    codes: list[np.ndarray] = []
    probe = copy.deepcopy(net).train()  # train-mode BN, as the metric runs it
    for m in probe.modules():
        if isinstance(m, (nn.ReLU, nn.Hardswish)):
            m.register_forward_pre_hook(
                lambda _m, inp: codes.append((inp[0].reshape(8, -1) > 0).double().numpy()))
    with torch.no_grad():
        probe(x)
    assert len(codes) > 20 and max(c.shape[1] for c in codes) >= 16 * 16 * 80
    value = compute_metric("naswot", net, [(x, torch.zeros(8, dtype=torch.long))])
    assert value == pytest.approx(_naswot_numpy(codes), rel=1e-12)


def test_naswot_of_identical_inputs_is_singular_worst_and_counted():
    x = torch.ones(5, 1, 2, 2)
    net = nn.Sequential(nn.Flatten(), nn.ReLU())
    result = measure_metric("naswot", net, [(x, torch.zeros(5, dtype=torch.long))] * 2)
    assert result.value == float("-inf") and result.nonfinite == 2


def test_l2norm_sums_frobenius_norms_of_conv_and_linear_weights_only():
    net = nn.Sequential(_toy_net(), nn.BatchNorm1d(5))
    with torch.no_grad():
        expected = float(torch.linalg.norm(net[0][0].weight) + torch.linalg.norm(net[0][3].weight))
    assert compute_metric("l2norm", net, []) == pytest.approx(expected, rel=1e-6)


def test_flops_and_params_are_the_analytic_cost_model():
    space = get_space("mbv3-tiny")
    arch = space.smallest
    net = build_network(space, arch, 1, 10)
    c = cost(space, arch, 1, 10)
    kw = dict(space=space, arch=arch, in_channels=1, num_classes=10)
    assert compute_metric("flops", net, [], **kw) == c.macs
    assert compute_metric("params", net, [], **kw) == c.params == sum(p.numel() for p in net.parameters())
    with pytest.raises(ValueError, match="num_classes"):
        compute_metric("params", net, [], space=space, arch=arch, in_channels=1)


def test_metrics_leave_the_callers_network_state_mode_and_grads_untouched():
    torch.manual_seed(5)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(inplace=True),
                        nn.Dropout(0.5), nn.Flatten(), nn.Linear(3 * 4 * 4, 5)).eval()
    net[5].weight.requires_grad_(False)  # a frozen layer still gets its score
    before = copy.deepcopy(net.state_dict())
    for name in ("gradnorm", "snip", "fisher", "synflow", "naswot", "l2norm"):
        assert math.isfinite(compute_metric(name, net, _batches()))
    assert not net.training and all(not m.training for m in net.modules())
    assert all(p.grad is None for p in net.parameters())
    assert not net[5].weight.requires_grad
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.fixture(scope="module")
def tiny_scores():
    space = get_space("mbv3-tiny")
    archs = sample_architectures(space, 3, seed=7)
    g = torch.Generator().manual_seed(8)
    batches = [(torch.randn(8, 1, 16, 16, generator=g), torch.randint(0, 10, (8,), generator=g))
               for _ in range(2)]
    calls: list[float] = []
    first = score_zero_cost(space, archs, METRICS, batches, 1, 10, seed=0,
                            progress=lambda f, _msg: calls.append(f))
    return space, archs, batches, first, calls


def test_score_zero_cost_on_mbv3_tiny_is_finite_and_follows_the_build_rule(tiny_scores):
    space, archs, batches, scores, calls = tiny_scores
    assert [s.arch_id for s in scores] == [a.id for a in archs]
    assert calls[-1] == 1.0 and calls == sorted(calls)
    for s, arch in zip(scores, archs):
        assert isinstance(s, ZeroCostScores) and set(s) == set(METRICS)
        assert all(math.isfinite(v) for v in s.values.values()), s.values
        assert all(n == 0 for n in s.nonfinite.values())
        assert s["params"] == cost(space, arch, 1, 10).params
        torch.manual_seed(0)  # the documented init rule reproduces a scored network
        net = build_network(space, arch, 1, 10)
        assert s["l2norm"] == pytest.approx(compute_metric("l2norm", net, batches), rel=1e-6)
    assert len({s["gradnorm"] for s in scores}) == 3


def test_score_zero_cost_is_deterministic_and_keeps_the_global_rng(tiny_scores):
    space, archs, batches, first, _ = tiny_scores
    torch.manual_seed(123)
    state = torch.get_rng_state()
    again = score_zero_cost(space, archs, METRICS, batches, 1, 10, seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert [dict(s) for s in again] == [dict(s) for s in first]
