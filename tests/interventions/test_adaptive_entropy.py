"""Adaptive entropy control (Skywork-OR1, spec §15): an entropy bonus -c h whose c moves by
delta per optimiser step toward the target, applied only while entropy is at or below it."""

import pytest
import torch

from entropyctl.interventions import InterventionError, build
from entropyctl.interventions.adaptive_entropy import AdaptiveEntropyConfig, EntropyCoefController, adaptive_entropy
from entropyctl.maths.batch import TokenBatch

CFG = AdaptiveEntropyConfig(target=0.2, coef_init=0.002, delta=0.001, coef_min=0.0, coef_max=0.003)


def batch(h):
    h = torch.tensor(h, requires_grad=True)
    z = torch.zeros_like(h)
    return TokenBatch(logp=z, old_logp=z, adv=z, mask=torch.ones_like(h), h=h, rewards=torch.zeros(h.shape[0]))


def test_update_rule_with_clamps_and_the_on_off_switch():
    c = EntropyCoefController(CFG)
    assert c.applied == 0.0  # nothing measured yet
    trace = []
    for h in (0.1, 0.1, 0.5, 0.2):
        c.observe(h)
        c.step()
        trace.append((round(c.coef, 9), round(c.applied, 9)))
    # 0.1 <= 0.2: 0.002 -> 0.003 (on); 0.1: stays at coef_max; 0.5 > 0.2: 0.002 and off; 0.2 (equal): on
    assert trace == [(0.003, 0.003), (0.003, 0.003), (0.002, 0.0), (0.003, 0.003)]


def test_step_uses_the_mean_of_its_loss_calls_and_an_idle_step_changes_nothing():
    c = EntropyCoefController(CFG)
    c.observe(0.1)
    c.observe(0.5)  # mean 0.3 > 0.2: down
    c.step()
    assert c.coef == pytest.approx(0.001) and c.last_entropy == pytest.approx(0.3)
    c.step()  # no loss call since: nothing to fold in
    assert c.coef == pytest.approx(0.001)


def test_penalty_is_minus_the_applied_coef_times_entropy_with_gradient():
    ctrl = EntropyCoefController(CFG)
    ctrl.coef, ctrl.last_entropy = 0.003, 0.1
    b = batch([[0.4, 0.2]])
    pen, stats = adaptive_entropy(b, CFG, ctrl)
    torch.testing.assert_close(pen, torch.tensor([[-0.0012, -0.0006]]))
    pen.sum().backward()
    torch.testing.assert_close(b.h.grad, torch.full((1, 2), -0.003))
    assert stats["adaptive_entropy/error"].item() == pytest.approx(0.1)  # mean h 0.3 - 0.2
    assert stats["adaptive_entropy/coef_applied"].item() == pytest.approx(0.003)
    assert ctrl._window == [pytest.approx(0.3)]  # the step's update will see this call


def test_state_round_trips_through_json():
    import json

    a = build({"adaptive_entropy": {"target": 0.2, "coef_init": 0.001}})
    a.controllers["adaptive_entropy"].observe(0.05)
    a.step()
    b = build({"adaptive_entropy": {"target": 0.2, "coef_init": 0.001}})
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert b.state_dict() == a.state_dict() == {"adaptive_entropy": {"coef": 0.0011, "last_entropy": 0.05}}


def test_bad_bounds_are_refused():
    with pytest.raises(InterventionError, match="coef_init"):
        AdaptiveEntropyConfig(coef_init=0.01, coef_max=0.005)
