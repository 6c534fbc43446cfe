"""Mismatch metrics and rollout corrections (spec §14) on a hand-typed 2×4 batch.

Per-token log-ratios δ = old_logp − logp_roll, worked out by hand:
    row 0: δ = [0, ln 3, −ln 3, pad]    ρ = [1, 3, 1/3]
    row 1: δ = [ln 1.5, 0, pad, pad]    ρ = [1.5, 1]
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from entropyctl.maths.correction import correction_weights, mismatch_metrics

L3, L15 = math.log(3.0), math.log(1.5)
OLD = torch.tensor([[-1.0, -0.5, -2.0, 0.0], [-0.2, -0.7, 0.0, 0.0]])
# logp_roll = old − δ; padding holds junk that must never count.
ROLL = OLD - torch.tensor([[0.0, L3, -L3, 9.0], [L15, 0.0, -9.0, 5.0]])
MASK = torch.tensor([[1.0, 1, 1, 0], [1, 1, 0, 0]])


def test_mismatch_metrics_match_the_hand_worked_values():
    m = mismatch_metrics(OLD, ROLL, MASK)
    assert m["mismatch/kl_k1"] == pytest.approx(-L15 / 5)
    # (ρ − 1) − δ per token: 0, 2 − ln3, ln3 − 2/3, 0.5 − ln1.5, 0
    assert m["mismatch/kl_k3"] == pytest.approx((11 / 6 - L15) / 5)
    assert m["mismatch/ratio_max"] == pytest.approx(3.0)
    assert m["mismatch/ratio_p50"] == pytest.approx(1.0)
    # torch.quantile interpolates linearly over the 5 sorted ratios [1/3, 1, 1, 1.5, 3]
    assert m["mismatch/ratio_p01"] == pytest.approx(1 / 3 + 0.04 * (1 - 1 / 3))
    assert m["mismatch/ratio_p99"] == pytest.approx(1.5 + 0.96 * 1.5)
    assert m["mismatch/seq_logratio_mean"] == pytest.approx(L15 / 2)
    assert m["mismatch/seq_logratio_absmax"] == pytest.approx(L15)


def test_identical_logprobs_give_zero_mismatch():
    m = mismatch_metrics(OLD, OLD.clone(), MASK)
    assert m["mismatch/kl_k1"] == 0.0 and m["mismatch/kl_k3"] == 0.0
    assert m["mismatch/ratio_p01"] == m["mismatch/ratio_max"] == 1.0


def test_token_tis_truncates_at_the_threshold():
    w, share = correction_weights(OLD, ROLL, MASK, "token_tis", 2.0)
    expected = torch.tensor([[1.0, 2.0, 1 / 3, 0.0], [1.5, 1.0, 0.0, 0.0]])
    torch.testing.assert_close(w, expected)
    assert share == pytest.approx(1 / 5)  # only ρ = 3 exceeds C = 2


def test_token_mis_masks_outside_the_band():
    w, share = correction_weights(OLD, ROLL, MASK, "token_mis", 2.0)
    torch.testing.assert_close(w, torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]))
    assert share == pytest.approx(2 / 5)  # ρ = 3 and ρ = 1/3


def test_seq_tis_weights_whole_responses():
    # Σδ: row 0 = 0 -> weight 1; row 1 = ln 1.5 -> 1.5, truncated to 1.2 under C = 1.2
    w, share = correction_weights(OLD, ROLL, MASK, "seq_tis", 2.0)
    torch.testing.assert_close(w, torch.tensor([[1.0, 1, 1, 0], [1.5, 1.5, 0, 0]]))
    assert share == 0.0
    w, share = correction_weights(OLD, ROLL, MASK, "seq_tis", 1.2)
    torch.testing.assert_close(w, torch.tensor([[1.0, 1, 1, 0], [1.2, 1.2, 0, 0]]))
    assert share == pytest.approx(1 / 2)


def test_seq_mis_rejects_on_the_geometric_mean():
    # exp(mean δ): row 0 = 1, row 1 = sqrt(1.5) ≈ 1.2247: kept under C = 2, rejected under 1.2
    w, share = correction_weights(OLD, ROLL, MASK, "seq_mis", 2.0)
    torch.testing.assert_close(w, MASK)
    assert share == 0.0
    w, share = correction_weights(OLD, ROLL, MASK, "seq_mis", 1.2)
    torch.testing.assert_close(w, torch.tensor([[1.0, 1, 1, 0], [0.0, 0, 0, 0]]))
    assert share == pytest.approx(1 / 2)


def test_huge_log_ratios_do_not_overflow():
    old = torch.tensor([[0.0, 0.0]])
    roll = torch.tensor([[-500.0, -500.0]])  # Σδ = 1000: exp overflows without the clamp
    w, share = correction_weights(old, roll, torch.ones(1, 2), "seq_tis", 2.0)
    torch.testing.assert_close(w, torch.full((1, 2), 2.0))
    assert share == 1.0


@pytest.mark.parametrize("mode", ["token_tis", "token_mis", "seq_tis", "seq_mis"])
def test_every_weight_is_one_without_mismatch(mode):
    w, share = correction_weights(OLD, OLD.clone(), MASK, mode, 2.0)
    torch.testing.assert_close(w, MASK)
    assert share == 0.0


def test_the_weight_multiplies_the_surrogate_and_not_the_penalties():
    """Pipeline.loss with is_weight: unclipped tokens at r = 1 with A = 1 have surrogate −1
    each; weights [2, 0] (token-mean over 2 tokens) give (−2 + 0)/2 = −1, and the masked
    token gets no surrogate gradient. The entropy bonus (−coef·h) is not reweighted."""
    from entropyctl.interventions import build
    from entropyctl.maths.batch import TokenBatch

    def tb(w):
        logp = torch.zeros(1, 2, requires_grad=True)
        return TokenBatch(logp=logp, old_logp=torch.zeros(1, 2), adv=torch.ones(1, 2), mask=torch.ones(1, 2),
                          h=torch.full((1, 2), 0.5), rewards=torch.zeros(1), is_weight=w)

    plain = build({})
    b = tb(None)
    loss, _ = plain.loss(b, "token-mean", None)
    assert loss.item() == pytest.approx(-1.0)
    b = tb(torch.tensor([[2.0, 0.0]]))
    loss, _ = plain.loss(b, "token-mean", None)
    assert loss.item() == pytest.approx(-1.0)
    loss.backward()
    torch.testing.assert_close(b.logp.grad, torch.tensor([[-1.0, 0.0]]))  # d(−w·r)/dlogp / 2 tokens
    bonus = build({"entropy_bonus": {"coef": 0.1}})
    b0, b1 = tb(None), tb(torch.tensor([[0.0, 0.0]]))
    l0, _ = bonus.loss(b0, "token-mean", None)
    l1, _ = bonus.loss(b1, "token-mean", None)
    assert l1.item() == pytest.approx(l0.item() + 1.0)  # only the surrogate's −1 went away
    assert l1.item() == pytest.approx(-0.1 * 0.5)  # what is left is the bonus, unweighted


def test_no_mismatch_logs_a_plain_zero_not_minus_zero():
    """The torch backend samples with the trainer's own numbers (δ = 0 everywhere): its log
    line should read 0.0, not -0.0."""
    m = mismatch_metrics(OLD, OLD.clone(), MASK)
    assert m["mismatch/kl_k1"] == 0.0 and math.copysign(1.0, m["mismatch/kl_k1"]) == 1.0
    assert json.dumps(m["mismatch/kl_k1"]) == "0.0"
