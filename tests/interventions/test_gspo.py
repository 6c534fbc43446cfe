"""GSPO (spec §15): the length-normalised sequence ratio, clipped per sequence, gradient per
token, aggregated per sequence (verl's seq-mean-token-mean)."""

import pytest
import torch

from entropyctl.interventions import InterventionError, build
from entropyctl.interventions.gspo import GspoConfig, gspo
from entropyctl.maths.batch import TokenBatch

WIDE = GspoConfig(eps_low=0.2, eps_high=0.2)


def batch(delta, adv, mask):
    """old_logp = -1 everywhere, logp = old_logp + delta (a leaf with gradient)."""
    old = torch.full((len(delta), len(delta[0])), -1.0)
    logp = (old + torch.tensor(delta)).requires_grad_(True)
    adv, mask = torch.tensor(adv), torch.tensor(mask)
    return TokenBatch(logp=logp, old_logp=old, adv=adv, mask=mask, h=torch.zeros_like(adv),
                      rewards=torch.zeros(adv.shape[0]))


def three_rows():
    # row 0: log-ratios 0.3, -0.1 (+ padding): s0 = exp(0.2 / 2) = exp(0.1) = 1.1051709, inside 1 +- 0.2
    # row 1: log-ratios 0.6, 0.3, 0.3: s1 = exp(1.2 / 3) = exp(0.4) = 1.4918247 > 1.2, A = +1: clipped
    # row 2: the same ratios with A = -1: max(1.4918, 1.2) keeps the unclipped term
    return batch([[0.3, -0.1, 0.0], [0.6, 0.3, 0.3], [0.6, 0.3, 0.3]],
                 [[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]],
                 [[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])


def test_every_token_of_a_sequence_gets_the_sequence_ratio():
    b = three_rows()
    loss, stats = gspo(b, WIDE)
    s0, s1 = 1.1051709, 1.4918247
    expected = torch.tensor([[-s0, -s0, 0.0], [-1.2, -1.2, -1.2], [s1, s1, s1]])
    torch.testing.assert_close(loss, expected)  # tokens 0.3 and -0.1 of row 0 share one ratio
    assert stats["clip/frac"].item() == pytest.approx(3 / 8)  # row 1's three valid tokens
    assert stats["gspo/seq_clip_frac"].item() == pytest.approx(1 / 3)
    assert stats["gspo/seq_log_ratio"].item() == pytest.approx((0.1 + 0.4 + 0.4) / 3)


def test_gradient_is_per_token_and_zero_for_a_clipped_sequence():
    b = three_rows()
    loss, _ = gspo(b, WIDE)
    (loss * b.mask).sum().backward()
    # d(-A sg(s) exp(logp - sg(logp))) / d logp_t = -A s for every valid token; row 1 is clipped
    s0, s1 = 1.1051709, 1.4918247
    torch.testing.assert_close(b.logp.grad, torch.tensor([[-s0, -s0, 0.0], [0.0, 0.0, 0.0], [s1, s1, s1]]))


def test_pipeline_aggregates_per_sequence():
    pipe = build({"gspo": {"eps_low": 0.2, "eps_high": 0.2}})
    mode, scale = pipe.aggregation("token-mean", None)
    assert mode == "seq-mean-token-mean"
    b = three_rows()
    loss, _ = pipe.loss(b, mode, scale)
    # mean over rows of each row's token mean: (-1.1051709 - 1.2 + 1.4918247) / 3
    assert loss.item() == pytest.approx(-0.2711154, abs=1e-6)
    loss.backward()
    assert b.logp.grad[0, 0].item() == pytest.approx(-1.1051709 / (2 * 3), abs=1e-6)


def test_on_policy_gradient_equals_grpo():
    # s = 1: the gradient is -A per token, as PPO's on-policy gradient
    b = batch([[0.0, 0.0], [0.0, 0.0]], [[0.5, 0.5], [-2.0, -2.0]], [[1.0, 1.0], [1.0, 0.0]])
    g = b.replace(logp=b.logp.detach().clone().requires_grad_(True))
    build({"gspo": {}}).loss(b, "token-mean", None)[0].backward()
    build({}).loss(g, "token-mean", None)[0].backward()
    torch.testing.assert_close(b.logp.grad, g.logp.grad)


def test_empty_response_is_finite_and_unclipped():
    b = batch([[0.0, 0.0], [0.5, 0.5]], [[0.0, 0.0], [1.0, 1.0]], [[0.0, 0.0], [1.0, 1.0]])
    loss, stats = gspo(b, WIDE)
    assert torch.isfinite(loss).all() and stats["gspo/seq_clip_frac"].item() == 1.0


def test_agg_mode_null_keeps_the_runs_and_a_clash_is_refused():
    assert build({"gspo": {"agg_mode": None}}).aggregation("token-mean", None) == ("token-mean", None)
    with pytest.raises(InterventionError, match="agg_mode"):
        build({"gspo": {}, "dr_grpo": {"loss_scale": 16.0}})
    with pytest.raises(InterventionError, match="gspo.agg_mode"):
        GspoConfig(agg_mode="token-sum")
