"""EntroPIC (spec §15): alpha = clip(K_p e + K_i sum e, -1, 1) with e = H - H*, and the term
alpha * mean over tokens with p > 0.95 of (-r |A|), added after the surrogate's aggregation."""

import math

import pytest
import torch

from entropyctl.interventions import build
from entropyctl.interventions.entropic import EntropicConfig, PiController, entropic
from entropyctl.maths.batch import TokenBatch

CFG = EntropicConfig(target=0.1, k_p=1.0, k_i=0.01, prob_threshold=0.95)


def batch(h_mean=0.3):
    # p = 0.99, 0.5, 0.98: tokens 0 and 2 are high-probability; r = 1, 1, 1.1; |A| = 2, 2, 1
    logp = torch.log(torch.tensor([[0.99, 0.5, 0.98]])).requires_grad_(True)
    old = torch.log(torch.tensor([[0.99, 0.5, 0.98 / 1.1]]))
    return TokenBatch(logp=logp, old_logp=old, adv=torch.tensor([[2.0, 2.0, -1.0]]),
                      mask=torch.ones(1, 3), h=torch.full((1, 3), h_mean), rewards=torch.zeros(1))


def test_term_and_gradient_on_high_probability_tokens():
    b = batch()
    ctrl = PiController(CFG)
    term, stats = entropic(b, CFG, ctrl)
    # e = 0.3 - 0.1 = 0.2, I = 0 -> alpha = 0.2; term = 0.2 (-(1)(2) - (1.1)(1)) / 2 = -0.31
    assert term.dim() == 0 and term.item() == pytest.approx(-0.31)
    term.backward()
    # d/dlogp_t = alpha (-r_t |A_t|) / 2 on the two high tokens: -0.2, 0, -0.11. Descent raises
    # their probability: entropy above target is pushed down.
    torch.testing.assert_close(b.logp.grad, torch.tensor([[-0.2, 0.0, -0.11]]))
    assert stats["entropic/alpha"].item() == pytest.approx(0.2)
    assert stats["entropic/frac_high"].item() == pytest.approx(2 / 3)


def test_integral_accumulates_per_step_and_alpha_is_clipped():
    ctrl = PiController(CFG)
    ctrl.observe(0.2)
    ctrl.observe(0.4)
    ctrl.step()
    assert ctrl.integral == pytest.approx(0.3)  # one term per step: the mean of its calls' errors
    assert ctrl.alpha(-0.05) == pytest.approx(-0.05 + 0.01 * 0.3)
    assert ctrl.alpha(5.0) == 1.0 and ctrl.alpha(-5.0) == -1.0


def test_below_target_flips_the_sign():
    b = batch(h_mean=0.04)  # e = -0.06 -> alpha = -0.06: push confident tokens down
    term, _ = entropic(b, CFG, PiController(CFG))
    term.backward()
    assert term.item() == pytest.approx(-0.06 * -1.55)
    assert (b.logp.grad[0, [0, 2]] > 0).all()


def test_added_after_the_surrogate_aggregation():
    b = batch()
    pipe = build({"entropic": {"target": 0.1, "k_p": 1.0, "k_i": 0.01, "prob_threshold": 0.95}})
    loss, stats = pipe.loss(b, "token-mean", None)
    g = batch()
    grpo, _ = build({}).loss(g, "token-mean", None)
    assert loss.item() == pytest.approx(grpo.item() - 0.31, abs=1e-6)
    assert stats["entropic/alpha"].item() == pytest.approx(0.2)


def test_no_high_probability_token_gives_zero():
    b = batch()
    b = b.replace(logp=torch.log(torch.full((1, 3), 0.5)).requires_grad_(True))
    term, stats = entropic(b, CFG, PiController(CFG))
    assert term.item() == 0.0 and math.isfinite(term.item()) and stats["entropic/frac_high"].item() == 0.0
