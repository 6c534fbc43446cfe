"""Forking tokens (spec §4): top-rho entropy mask, k = ceil(rho N) as the authors' fork
computes it, normalize_by selected | all, exact zero gradient off the mask, the empty-response
case of spec §13, stacking with a surrogate, and the scope option."""

import pytest
import torch

from entropyctl.maths.batch import TokenBatch
from entropyctl.interventions import InterventionError, build
from entropyctl.interventions.forking_tokens import ForkingTokensConfig, forking_count, forking_select

H = torch.tensor([[0.1, 0.9, 0.5], [0.8, 0.2, 0.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # N = 5
ADV = torch.tensor([[2.0, 2.0, 2.0], [-1.0, -1.0, 0.0]])


def batch(h=H, mask=MASK, adv=ADV):
    logp = torch.zeros_like(h).requires_grad_(True)
    return TokenBatch(logp=logp, old_logp=torch.zeros_like(h), adv=adv, mask=mask, h=h,
                      rewards=torch.zeros(h.shape[0]))


@pytest.mark.parametrize("n, rho, k", [
    (10, 0.2, 2), (11, 0.2, 3), (5, 0.2, 1), (5, 0.4, 2), (1, 0.2, 1), (0, 0.2, 1),
    (25, 0.28, 7),  # spec §13: int(N rho + 0.9999) = 7; the float ceil of 7.000000000000001 is 8
])
def test_count_is_ceil_rho_n(n, rho, k):
    assert forking_count(n, rho) == k


def test_mask_picks_the_highest_entropy_valid_tokens():
    assert forking_select(batch(), ForkingTokensConfig(frac=0.4)).nonzero().tolist() == [[0, 1], [1, 0]]
    # padding (h = 0 here, but even a large h) is never picked
    h = H.clone()
    h[1, 2] = 99.0
    assert not forking_select(batch(h=h), ForkingTokensConfig(frac=1.0))[1, 2]


def loss_and_grad(params, mode="token-mean", b=None):
    b = b or batch()
    loss, stats = build({"forking_tokens": params}).loss(b, mode, None)
    loss.backward()
    return loss.item(), b.logp.grad, stats


def test_normalize_by_selected_divides_by_the_selected_count():
    # on-policy grpo loss = -A; selected (0,1) -> -2 and (1,0) -> +1; 2 selected tokens
    loss, grad, stats = loss_and_grad({"frac": 0.4})
    assert loss == pytest.approx((-2 + 1) / 2)
    expected = torch.zeros(2, 3)
    expected[0, 1], expected[1, 0] = -2 / 2, 1 / 2
    torch.testing.assert_close(grad, expected)  # exactly 0 off the mask
    assert stats["forking/frac_selected"].item() == pytest.approx(0.4)
    assert stats["forking/h_threshold"].item() == pytest.approx(0.8)


def test_normalize_by_all_keeps_every_valid_token_in_the_denominator():
    loss, grad, _ = loss_and_grad({"frac": 0.4, "normalize_by": "all"})
    assert loss == pytest.approx((-2 + 1) / 5)
    expected = torch.zeros(2, 3)
    expected[0, 1], expected[1, 0] = -2 / 5, 1 / 5
    torch.testing.assert_close(grad, expected)


def test_a_response_without_selected_tokens_is_skipped_not_nan():
    # rho 0.2 of N = 5 -> 1 token, (0,1): row 1 has none selected (spec §13 0/0 case)
    loss, _, _ = loss_and_grad({"frac": 0.2}, mode="seq-mean-token-mean")
    assert loss == pytest.approx(-2.0)  # row 1 skipped
    loss, _, _ = loss_and_grad({"frac": 0.2, "normalize_by": "all"}, mode="seq-mean-token-mean")
    assert loss == pytest.approx((-2 / 3 + 0 / 2) / 2)


def test_the_surrogate_still_sees_every_valid_token():
    # stacked with kl_cov: its top-k and share are over all 5 valid tokens, not the 1 selected
    pipe = build({"kl_cov": {"frac": 0.4}, "forking_tokens": {"frac": 0.2}})
    assert pipe.names == ["kl_cov", "forking_tokens"]
    _, stats = pipe.loss(batch(), "token-mean", None)
    assert stats["kl_cov/frac_penalised"].item() == pytest.approx(2 / 5)


def test_round_scope_selects_across_responses():
    pipe = build({"forking_tokens": {"frac": 0.4, "scope": "round"}})
    sel = pipe.select(batch(), "round")["forking_tokens"]
    assert sel.nonzero().tolist() == [[0, 1], [1, 0]]
    # a loss call on row 1 with its rows of the round's selection trains (1,0) only
    b1 = batch(h=H[1:], mask=MASK[1:], adv=ADV[1:])
    _, stats = pipe.loss(b1, "token-mean", None, {"forking_tokens": sel[1:]})
    assert stats["forking/frac_selected"].item() == pytest.approx(0.5)


def test_bad_parameters_are_config_errors():
    with pytest.raises(InterventionError, match="normalize_by"):
        build({"forking_tokens": {"normalize_by": "some"}})
    with pytest.raises(InterventionError, match="scope"):
        build({"forking_tokens": {"scope": "global"}})
