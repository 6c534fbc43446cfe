"""KL anchor (spec §5.4): coef * kl(logp, ref_logp) per token, any estimator, in the loss."""

import math

import pytest
import torch

from entropyctl.maths.batch import TokenBatch
from entropyctl.interventions import InterventionError, build
from entropyctl.interventions.kl_anchor import KlAnchorConfig, kl_anchor


def batch(logp, ref, adv=0.0):
    lp = torch.tensor([logp]).requires_grad_(True)
    return TokenBatch(logp=lp, old_logp=lp.detach().clone(), adv=torch.full_like(lp, adv),
                      mask=torch.ones_like(lp), h=torch.zeros_like(lp), rewards=torch.zeros(1),
                      ref_logp=torch.tensor([ref]))


def test_k3_penalty_value_and_gradient():
    # logp = -1, ref = -2: k3 = e^-1 (spec §5.4), d k3 / d logp = 1 - e^-1
    b = batch([-1.0], [-2.0])
    pen, stats = kl_anchor(b, KlAnchorConfig(coef=0.5, kind="k3"))
    assert pen.item() == pytest.approx(0.5 * math.exp(-1))
    assert stats["kl_anchor/kl"].item() == pytest.approx(math.exp(-1))
    pen.sum().backward()
    assert b.logp.grad.item() == pytest.approx(0.5 * (1 - math.exp(-1)))


def test_straight_through_estimator_in_the_pipeline():
    # k3+: value e - 2 (logp = -2, ref = -1), gradient of k2 = lr = -1; A = 0 so only the penalty
    b = batch([-2.0, -2.0], [-1.0, -1.0])
    loss, _ = build({"kl_anchor": {"coef": 0.1, "kind": "k3+"}}).loss(b, "token-mean", None)
    assert loss.item() == pytest.approx(0.1 * (math.e - 2))
    loss.backward()
    torch.testing.assert_close(b.logp.grad, torch.tensor([[-0.05, -0.05]]))


def test_k1_can_be_negative():
    pen, _ = kl_anchor(batch([-2.0], [-1.0]), KlAnchorConfig(coef=1.0, kind="k1"))
    assert pen.item() == pytest.approx(-1.0)


@pytest.mark.parametrize("verl, ours", [("low_var_kl", "k3"), ("mse", "k2"), ("kl", "k1"), ("low_var_kl+", "k3+")])
def test_verl_names_are_our_estimators(verl, ours):
    """verl's actor.kl_loss_type names select the same estimator, value and gradient."""
    assert KlAnchorConfig(kind=verl).kind == ours
    a, _ = kl_anchor(batch([-2.5], [-1.0]), KlAnchorConfig(coef=1.0, kind=verl))
    b, _ = kl_anchor(batch([-2.5], [-1.0]), KlAnchorConfig(coef=1.0, kind=ours))
    assert a.item() == b.item()


def test_clear_errors():
    with pytest.raises(InterventionError, match="kind=full"):
        build({"kl_anchor": {"kind": "full"}})
    b = batch([-1.0], [-2.0]).replace(ref_logp=None)
    with pytest.raises(InterventionError, match="ref_logp"):
        kl_anchor(b, KlAnchorConfig())
