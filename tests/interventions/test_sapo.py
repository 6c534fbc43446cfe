"""SAPO (spec §15): l = -(4 / tau) sigma(tau (r - 1)) A with tau_pos / tau_neg by the sign of A."""

import pytest
import torch

from entropyctl.interventions import InterventionError, build
from entropyctl.interventions.sapo import SapoConfig, sapo
from entropyctl.maths.batch import TokenBatch


def batch(ratio, adv):
    old = torch.full((1, len(ratio)), -1.0)
    logp = (old + torch.log(torch.tensor([ratio]))).requires_grad_(True)
    return TokenBatch(logp=logp, old_logp=old, adv=torch.tensor([adv]), mask=torch.ones(1, len(ratio)),
                      h=torch.zeros(1, len(ratio)), rewards=torch.zeros(1))


def test_gate_values_and_gradients():
    b = batch([1.0, 2.0, 1.0, 0.5], [1.0, 1.0, -1.0, -1.0])
    loss, stats = sapo(b, SapoConfig())  # tau_pos 1, tau_neg 1.05
    # t0: r 1, tau 1: -(4)(0.5) = -2;  t1: r 2: -4 sigma(1) = -4 (0.7310586) = -2.9242343
    # t2: r 1, tau 1.05, A -1: +(4 / 1.05)(0.5) = 1.9047619
    # t3: r 0.5: sigma(-0.525) = 0.3716838, +(4 / 1.05)(0.3716838) = 1.4159383
    torch.testing.assert_close(loss, torch.tensor([[-2.0, -2.9242343, 1.9047619, 1.4159383]]))
    loss.sum().backward()
    # d l / d logp = -A r 4 sigma (1 - sigma): t0 -1; t1 -2 (0.7864477) = -1.5728955; t2 +1;
    # t3 +0.5 (4)(0.3716838)(0.6283162) = 0.4670699
    torch.testing.assert_close(b.logp.grad, torch.tensor([[-1.0, -1.5728955, 1.0, 0.4670699]]))
    assert stats["sapo/gate_weight"].item() == pytest.approx((1 + 0.7864477 + 1 + 0.9341398) / 4, abs=1e-6)
    assert stats["sapo/frac_gated"].item() == 0.0


def test_on_policy_gradient_equals_plain_policy_gradient():
    b = batch([1.0, 1.0], [0.7, -1.3])
    sapo(b, SapoConfig(tau_pos=3.0, tau_neg=5.0))[0].sum().backward()
    torch.testing.assert_close(b.logp.grad, torch.tensor([[-0.7, 1.3]]))  # -A whatever tau


def test_far_off_policy_tokens_are_gated_not_cut():
    b = batch([4.0], [1.0])
    loss, stats = sapo(b, SapoConfig())
    loss.sum().backward()
    # sigma(3) = 0.9525741: w = 4 (0.9525741)(0.0474259) = 0.1807066, grad = -4 w = -0.7228265
    assert b.logp.grad.item() == pytest.approx(-0.7228265, abs=1e-6)
    assert stats["sapo/frac_gated"].item() == 1.0


def test_aggregates_per_sequence_and_validates():
    assert build({"sapo": {}}).aggregation("token-mean", None)[0] == "seq-mean-token-mean"
    with pytest.raises(InterventionError, match="tau"):
        SapoConfig(tau_neg=0.0)
