"""GRPO's PPO surrogate (spec §5.2): values and gradients on hand-worked tokens."""

import math

import torch

from entropyctl.maths.batch import TokenBatch
from entropyctl.interventions.grpo import GrpoConfig, grpo


def batch(logp, old_logp, adv, mask=None):
    logp = torch.tensor(logp, requires_grad=True)
    old = torch.tensor(old_logp)
    adv = torch.tensor(adv)
    mask = torch.ones_like(old) if mask is None else torch.tensor(mask)
    return TokenBatch(logp=logp, old_logp=old, adv=adv, mask=mask, h=torch.zeros_like(old),
                      rewards=torch.zeros(old.shape[0]))


def test_unclipped_token_is_minus_a_times_ratio():
    b = batch([[math.log(1.1)]], [[0.0]], [[1.0]])
    loss, stats = grpo(b, GrpoConfig())
    assert abs(loss.item() + 1.1) < 1e-6
    loss.sum().backward()
    assert abs(b.logp.grad.item() + 1.1) < 1e-6  # d(-A r)/dlogp = -A r
    assert stats["clip/frac"].item() == 0.0


def test_positive_advantage_above_1_plus_eps_is_clipped_with_zero_gradient():
    b = batch([[math.log(1.5)]], [[0.0]], [[1.0]])
    loss, stats = grpo(b, GrpoConfig(eps_low=0.2, eps_high=0.28, clip_c=10.0))
    assert abs(loss.item() + 1.28) < 1e-6
    loss.sum().backward()
    assert b.logp.grad.item() == 0.0  # vanilla PPO: 0 (GPPO keeps -1.28)
    assert stats["clip/frac"].item() == 1.0


def test_negative_advantage_below_1_minus_eps_is_clipped():
    b = batch([[math.log(0.5)]], [[0.0]], [[-1.0]])
    loss, _ = grpo(b, GrpoConfig(eps_low=0.2, eps_high=0.28, clip_c=10.0))
    assert abs(loss.item() - 0.8) < 1e-6
    loss.sum().backward()
    assert b.logp.grad.item() == 0.0


def test_dual_clip_caps_negative_advantage_loss_at_c():
    # A = -1, r = 5 > c = 3: max(-A r, -A clamp(r)) = 5, dual clip caps it at -A c = 3
    b = batch([[math.log(5.0)]], [[0.0]], [[-1.0]])
    loss, _ = grpo(b, GrpoConfig(eps_low=0.2, eps_high=0.2, clip_c=3.0))
    assert abs(loss.item() - 3.0) < 1e-6
    loss.sum().backward()
    assert b.logp.grad.item() == 0.0


def test_clip_frac_counts_valid_tokens_only():
    b = batch([[math.log(1.5), math.log(1.5)]], [[0.0, 0.0]], [[1.0, 1.0]], mask=[[1.0, 0.0]])
    _, stats = grpo(b, GrpoConfig())
    assert stats["clip/frac"].item() == 1.0
