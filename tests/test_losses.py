"""Shared loss pieces (entropyctl/maths/losses.py): the four aggregation modes of spec §3.2 on a
hand-typed batch, the KL estimators of spec §5.4 (values and gradients, straight-through
included), and the helpers interventions share (top-k mask, NLL, clip shares)."""

import math

import pytest
import torch

from entropyctl.maths.losses import AGG_MODES, agg_loss, clip_stats, kl_estimate, nll, top_k_mask

# per-token losses and mask; row 2 is an empty response (no valid token)
LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])


@pytest.mark.parametrize("mode, expected", [
    ("token-mean", (1 + 2 + 4) / 3),  # pooled tokens
    ("seq-mean-token-sum", ((1 + 2) + 4) / 2),  # mean over the 2 non-empty rows of row sums
    ("seq-mean-token-mean", ((1 + 2) / 2 + 4 / 1) / 2),  # mean of row means = 2.75
    ("seq-mean-token-sum-norm", (1 + 2 + 4) / 3),  # sum / C, C defaults to the padded T = 3
])
def test_aggregation_modes_on_a_hand_typed_batch(mode, expected):
    assert agg_loss(LOSS, MASK, mode) == pytest.approx(expected)


def test_sum_norm_uses_the_constant_scale_and_keeps_no_batch_division():
    # earlier verl form (spec §3.2, §13): sum over all tokens / C, not also / #rows
    assert agg_loss(LOSS, MASK, "seq-mean-token-sum-norm", scale=4.0) == pytest.approx(7 / 4)


def test_padding_and_empty_rows_never_count():
    big = LOSS.clone()
    big[MASK == 0] = 1e6
    for mode in AGG_MODES:
        assert agg_loss(big, MASK, mode) == pytest.approx(agg_loss(LOSS, MASK, mode))


def test_loss_mask_narrows_the_numerator_and_mask_keeps_the_denominator():
    sel = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert agg_loss(LOSS, MASK, "token-mean", loss_mask=sel) == pytest.approx((2 + 4) / 3)
    assert agg_loss(LOSS, MASK, "seq-mean-token-mean", loss_mask=sel) == pytest.approx((2 / 2 + 4) / 2)


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="token-mean"):
        agg_loss(LOSS, MASK, "token-sum")


# spec §5.4 test values
@pytest.mark.parametrize("logp, ref, k1, k2, k3", [
    (-1.0, -2.0, 1.0, 0.5, math.exp(-1)),  # 0.367879
    (-2.0, -1.0, -1.0, 0.5, math.e - 2),  # 0.718282
])
def test_kl_estimator_values(logp, ref, k1, k2, k3):
    lp, rf = torch.tensor([logp]), torch.tensor([ref])
    assert kl_estimate(lp, rf, "k1").item() == pytest.approx(k1)
    assert kl_estimate(lp, rf, "k2").item() == pytest.approx(k2)
    assert kl_estimate(lp, rf, "k3").item() == pytest.approx(k3, abs=1e-6)
    assert kl_estimate(lp, rf, "abs").item() == pytest.approx(abs(k1))
    # '+' keeps the named estimator's value
    for kind, v in (("k1", k1), ("k3", k3), ("abs", abs(k1))):
        assert kl_estimate(lp, rf, kind + "+").item() == pytest.approx(v, abs=1e-6)


def grad_of(kind: str, logp: float, ref: float) -> float:
    lp = torch.tensor([logp], requires_grad=True)
    kl_estimate(lp, torch.tensor([ref]), kind).sum().backward()
    return lp.grad.item()


def test_kl_estimator_gradients_and_straight_through():
    lr = 1.0  # logp = -1, ref = -2
    assert grad_of("k1", -1.0, -2.0) == pytest.approx(1.0)
    assert grad_of("k2", -1.0, -2.0) == pytest.approx(lr)
    assert grad_of("k3", -1.0, -2.0) == pytest.approx(1 - math.exp(-lr))  # 0.632121
    # straight-through: every '+' estimator has k2's gradient lr, whatever its value
    for kind in ("k1+", "k2+", "k3+", "abs+"):
        assert grad_of(kind, -1.0, -2.0) == pytest.approx(lr)
        assert grad_of(kind, -2.0, -1.0) == pytest.approx(-lr)


def test_k3_is_clamped_as_in_verl():
    # lr = -30 is clamped to -20 inside; exp(20) - 21 is then clamped to 10
    assert kl_estimate(torch.tensor([-31.0]), torch.tensor([-1.0]), "k3").item() == 10.0


def test_unknown_kl_estimator_is_a_clear_error():
    with pytest.raises(ValueError, match="k3"):
        kl_estimate(torch.zeros(1), torch.zeros(1), "k4")


def test_top_k_mask_picks_the_largest_valid_scores_only():
    score = torch.tensor([[0.5, 9.0, 0.1], [0.7, -1.0, 3.0]])
    valid = torch.tensor([[1, 0, 1], [1, 1, 1]]).bool()  # the 9.0 is padding
    assert top_k_mask(score, valid, 2).nonzero().tolist() == [[1, 0], [1, 2]]
    # k larger than the valid count: every valid token, no padding
    assert top_k_mask(score, valid, 10).equal(valid)
    # all-equal (or all-negative) valid scores still never pick padding
    assert top_k_mask(torch.full((2, 3), -5.0), valid, 5).equal(valid)
    assert not top_k_mask(score, valid, 0).any()


def test_nll_is_token_mean_over_the_mask():
    logp = torch.tensor([[-1.0, -3.0], [-2.0, -9.0]])
    assert nll(logp, torch.tensor([[1.0, 1.0], [1.0, 0.0]])).item() == pytest.approx(2.0)
    assert nll(logp, torch.zeros(2, 2)).item() == 0.0


def test_clip_shares_per_bound():
    ratio = torch.tensor([[1.5, 1.1, 0.5, 0.9]])
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    s = clip_stats(ratio, adv, torch.ones(1, 4), 0.2, 0.28)
    assert s["clip/frac_high"].item() == 0.25  # only (A>0, r=1.5 > 1.28)
    assert s["clip/frac_low"].item() == 0.25  # only (A<0, r=0.5 < 0.8)
