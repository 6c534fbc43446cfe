"""Clip-higher (spec §3.1): DAPO's decoupled clip 0.2 / 0.28 with dual clip c = 10."""

import torch

from entropyctl.maths.batch import TokenBatch
from entropyctl.interventions import build
from entropyctl.interventions.clip_higher import ClipHigherConfig, clip_higher
from entropyctl.interventions.grpo import GrpoConfig, grpo


def per_token(fn, cfg, ratio, adv):
    """Loss values and d loss / d logp at old_logp = 0, logp = log(ratio)."""
    logp = torch.log(torch.tensor(ratio)).requires_grad_(True)
    adv = torch.tensor(adv)
    b = TokenBatch(logp=logp, old_logp=torch.zeros_like(logp), adv=adv, mask=torch.ones_like(adv),
                   h=torch.zeros_like(adv), rewards=torch.zeros(adv.shape[0]))
    loss, stats = fn(b, cfg)
    loss.sum().backward()
    return loss.detach(), logp.grad, stats


def test_defaults_are_dapos():
    assert ClipHigherConfig() == ClipHigherConfig(eps_low=0.2, eps_high=0.28, clip_c=10.0)


def test_upper_bound_is_raised_to_1_28():
    # A = +1: r = 1.25 is inside clip-higher's bound (value -r, gradient -r) but clipped by 0.2/0.2
    loss, grad, _ = per_token(clip_higher, ClipHigherConfig(), [[1.25, 1.5]], [[1.0, 1.0]])
    torch.testing.assert_close(loss, torch.tensor([[-1.25, -1.28]]))
    torch.testing.assert_close(grad, torch.tensor([[-1.25, 0.0]]))  # clipped: exactly 0
    g_loss, g_grad, _ = per_token(grpo, GrpoConfig(), [[1.25, 1.5]], [[1.0, 1.0]])
    torch.testing.assert_close(g_loss, torch.tensor([[-1.2, -1.2]]))
    assert (g_grad == 0).all()


def test_lower_bound_and_dual_clip():
    # A = -1: r = 0.5 clipped at 0.8 (value 0.8, gradient 0); r = 20 capped by the dual clip at c = 10
    loss, grad, stats = per_token(clip_higher, ClipHigherConfig(), [[0.5, 20.0, 0.9]], [[-1.0, -1.0, -1.0]])
    torch.testing.assert_close(loss, torch.tensor([[0.8, 10.0, 0.9]]))
    torch.testing.assert_close(grad, torch.tensor([[0.0, 0.0, 0.9]]))
    assert abs(stats["clip/frac_low"].item() - 1 / 3) < 1e-6
    assert stats["clip/frac_high"].item() == 0.0


def test_clip_share_stats():
    _, _, stats = per_token(clip_higher, ClipHigherConfig(), [[1.5, 1.1, 0.5, 1.0]], [[1.0, 1.0, -1.0, 1.0]])
    assert stats["clip/frac"].item() == 0.5  # L2 > L1 at r = 1.5 (A > 0) and r = 0.5 (A < 0)
    assert stats["clip/frac_high"].item() == 0.25
    assert stats["clip/frac_low"].item() == 0.25


def test_is_a_surrogate_that_replaces_grpo():
    pipe = build({"clip_higher": None})
    assert pipe.names == ["clip_higher"]
