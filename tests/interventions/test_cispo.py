"""CISPO (spec §15): l = -sg(clip(r)) A logp. Every token keeps a gradient; verl's 1 + eps_high
cap by default, TRL's absolute cap as eps_high_abs."""

import pytest
import torch

from entropyctl.interventions import InterventionError, build
from entropyctl.interventions.cispo import CispoConfig, cispo
from entropyctl.maths.batch import TokenBatch

# old p = 0.1 everywhere; r = 0.5, 1.1, 3.0, 6.0 -> p = 0.05, 0.11, 0.3, 0.6; A = 1, 1, 1, -1
RATIO = [0.5, 1.1, 3.0, 6.0]
ADV = [1.0, 1.0, 1.0, -1.0]


def batch():
    old = torch.log(torch.full((1, 4), 0.1))
    logp = torch.log(0.1 * torch.tensor([RATIO])).requires_grad_(True)
    return TokenBatch(logp=logp, old_logp=old, adv=torch.tensor([ADV]), mask=torch.ones(1, 4),
                      h=torch.zeros(1, 4), rewards=torch.zeros(1))


def test_verl_convention_values_gradients_and_clip_share():
    b = batch()
    loss, stats = cispo(b, CispoConfig())  # eps_low 10 (no lower bound), cap 1 + 0.2
    # w = 0.5, 1.1, 1.2, 1.2;  l = -w A logp:
    #   -0.5 log 0.05 = 1.4978661, -1.1 log 0.11 = 2.4280024, -1.2 log 0.3 = 1.4447674,
    #   +1.2 log 0.6 = -0.6129907
    torch.testing.assert_close(loss, torch.tensor([[1.4978661, 2.4280024, 1.4447674, -0.6129907]]))
    loss.sum().backward()
    # d l / d logp = -w A: the clipped tokens 3.0 and 6.0 keep -1.2 and +1.2 (PPO would give 0)
    torch.testing.assert_close(b.logp.grad, torch.tensor([[-0.5, -1.1, -1.2, 1.2]]))
    assert stats["clip/frac"].item() == 0.5 and stats["clip/frac_high"].item() == 0.5


def test_ppo_zeroes_what_cispo_keeps():
    b = batch()
    build({}).surrogate(b)[0].sum().backward()  # grpo: r = 3 with A > 0 is clipped, r = 6 dual-clipped
    assert b.logp.grad[0, 2].item() == 0.0 and b.logp.grad[0, 3].item() == 0.0


def test_trl_absolute_cap():
    b = batch()
    loss, stats = cispo(b, CispoConfig(eps_high_abs=5.0))
    loss.sum().backward()
    torch.testing.assert_close(b.logp.grad, torch.tensor([[-0.5, -1.1, -3.0, 5.0]]))  # w = min(r, 5)
    assert stats["clip/frac"].item() == 0.25


def test_lower_bound_when_asked():
    b = batch()
    cispo(b, CispoConfig(eps_low=0.2))[0].sum().backward()
    assert b.logp.grad[0, 0].item() == pytest.approx(-0.8)  # w = max(0.5, 1 - 0.2)


def test_weight_is_detached():
    b = batch()
    loss, _ = cispo(b, CispoConfig())
    (grad,) = torch.autograd.grad(loss[0, 1], b.logp)
    assert grad[0, 1].item() == pytest.approx(-1.1)  # only through logp: not -1.1 * (1 + log p)


def test_bad_cap_is_refused():
    with pytest.raises(InterventionError, match="eps_high_abs"):
        CispoConfig(eps_high_abs=0.0)
