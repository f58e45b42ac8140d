"""LARS against steps computed by hand; schedules and lr scaling against their formulas."""

import math

import pytest
import torch
from torch import nn

from trainers.model.optim import LARS, LR_SCALINGS, OPTIMIZERS, build_optimizer, lr_at, param_groups


def _norm(values):
    return math.sqrt(sum(v * v for v in values))


def test_lars_two_steps_match_the_tf_update_computed_by_hand():
    w0 = [0.5, -1.0, 2.0, 0.25]
    b0 = [0.1, -0.2]
    grads = [([0.3, 0.1, -0.4, 0.2], [1.0, -2.0]), ([-0.1, 0.5, 0.2, 0.0], [0.5, 0.5])]
    lr, momentum, wd, eta = 0.7, 0.9, 0.01, 1e-3

    w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(b0, dtype=torch.float64, requires_grad=True)
    opt = LARS([dict(params=[w], weight_decay=wd, lars_exclude=False),
                dict(params=[b], weight_decay=0.0, lars_exclude=True)], lr=lr, momentum=momentum)

    ew, eb = list(w0), list(b0)
    vw, vb = [0.0] * 4, [0.0] * 2
    for gw, gb in grads:
        w.grad = torch.tensor(gw, dtype=torch.float64)
        b.grad = torch.tensor(gb, dtype=torch.float64)
        opt.step()
        # Weights: decay added to the gradient, then the trust ratio eta * ||w|| / ||g||.
        g = [gi + wd * wi for gi, wi in zip(gw, ew)]
        trust = eta * _norm(ew) / _norm(g)
        vw = [momentum * v + lr * trust * gi for v, gi in zip(vw, g)]
        ew = [wi - v for wi, v in zip(ew, vw)]
        # Biases: no decay, no adaptation, plain momentum.
        vb = [momentum * v + lr * gi for v, gi in zip(vb, gb)]
        eb = [bi - v for bi, v in zip(eb, vb)]
        assert w.detach().tolist() == pytest.approx(ew, rel=1e-12)
        assert b.detach().tolist() == pytest.approx(eb, rel=1e-12)


def test_lars_trust_ratio_is_one_when_a_norm_is_zero():
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = LARS([dict(params=[w], weight_decay=0.0, lars_exclude=False)], lr=0.5, momentum=0.0)
    w.grad = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    opt.step()
    assert w.detach().tolist() == pytest.approx([-0.5, -1.0, -1.5])


def test_biases_and_batchnorm_are_excluded_from_decay_and_adaptation():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    decay, plain = param_groups(model, weight_decay=0.1)
    assert [tuple(p.shape) for p in decay["params"]] == [(4, 3, 3, 3), (2, 4)]
    assert [tuple(p.shape) for p in plain["params"]] == [(4,), (4,), (4,), (2,)]
    assert (decay["weight_decay"], decay["lars_exclude"]) == (0.1, False)
    assert (plain["weight_decay"], plain["lars_exclude"]) == (0.0, True)


@pytest.mark.parametrize("name, cls", [("lars", LARS), ("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                                       ("adamw", torch.optim.AdamW)])
def test_registry_builds_each_optimizer_with_the_decay_split(name, cls):
    opt = build_optimizer(nn.Linear(3, 2), name=name, lr=0.1, momentum=0.9, weight_decay=1e-4)
    assert type(opt) is cls and sorted(OPTIMIZERS) == ["adam", "adamw", "lars", "sgd"]
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-4, 0.0]


def test_lr_scalings_follow_the_paper():
    assert LR_SCALINGS["linear"](0.3, 1024) == pytest.approx(1.2)
    assert LR_SCALINGS["sqrt"](0.075, 4096) == pytest.approx(4.8)
    assert LR_SCALINGS["none"](0.3, 1024) == 0.3


@pytest.mark.parametrize("step, expected", [
    (0, 2.0 * 1 / 10),
    (4, 2.0 * 5 / 10),
    (9, 2.0),
    (10, 2.0),                                               # cosine starts at the peak
    (35, 2.0 * 0.5 * (1 + math.cos(math.pi * 25 / 100))),
    (60, 1.0),                                               # half way: half the peak
    (109, 2.0 * 0.5 * (1 + math.cos(math.pi * 99 / 100))),
    (110, 0.0),
])
def test_warmup_then_cosine_at_chosen_steps(step, expected):
    assert lr_at(step, peak_lr=2.0, warmup_steps=10, total_steps=110, schedule="cosine") == pytest.approx(expected, abs=1e-12)


def test_constant_schedule_after_warmup_and_no_warmup():
    assert lr_at(2, peak_lr=0.5, warmup_steps=4, total_steps=20, schedule="constant") == pytest.approx(0.375)
    assert lr_at(19, peak_lr=0.5, warmup_steps=4, total_steps=20, schedule="constant") == 0.5
    assert lr_at(0, peak_lr=0.5, warmup_steps=0, total_steps=20, schedule="cosine") == 0.5


def _reference_lars(weights, grads_per_step, groups, *, lr, momentum, eta, nesterov):
    """A plain per-parameter loop over Python-held float64 tensors: the TF LARSOptimizer's update."""
    weights = [w.clone() for w in weights]
    buffers = [torch.zeros_like(w) for w in weights]
    for grads in grads_per_step:
        for i, (w, g) in enumerate(zip(weights, grads)):
            wd, exclude = groups[i]
            if not exclude:
                g = g + wd * w
                w_norm, g_norm = math.sqrt(float((w * w).sum())), math.sqrt(float((g * g).sum()))
                trust = eta * w_norm / g_norm if w_norm > 0 and g_norm > 0 else 1.0
            else:
                trust = 1.0
            buffers[i] = momentum * buffers[i] + lr * trust * g
            weights[i] = w - (momentum * buffers[i] + lr * trust * g if nesterov else buffers[i])
    return weights


@pytest.mark.parametrize("nesterov", [False, True])
def test_lars_equals_a_per_parameter_float64_loop_over_several_steps(nesterov):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 5)).double()
    with torch.no_grad():
        model[0].bias.zero_()  # a zero-norm parameter in the excluded group
    groups = param_groups(model, weight_decay=0.05)
    opt = LARS(groups, lr=0.8, momentum=0.9, nesterov=nesterov)
    order = groups[0]["params"] + groups[1]["params"]
    kinds = [(0.05, False)] * len(groups[0]["params"]) + [(0.0, True)] * len(groups[1]["params"])
    start = [p.detach().clone() for p in order]
    g = torch.Generator().manual_seed(1)
    grads_per_step = []
    for _ in range(5):
        model.zero_grad(set_to_none=True)
        x = torch.rand(8, 3, 6, 6, generator=g, dtype=torch.float64)
        model(x).pow(2).mean().backward()
        grads_per_step.append([p.grad.clone() for p in order])
        opt.step()
    # The gradients depend on the weights, so the reference replays the recorded ones.
    expected = _reference_lars(start, grads_per_step, kinds, lr=0.8, momentum=0.9, eta=1e-3, nesterov=nesterov)
    for p, e in zip(order, expected):
        torch.testing.assert_close(p.detach(), e, rtol=1e-12, atol=1e-15)
    assert not torch.equal(order[0].detach(), start[0])
