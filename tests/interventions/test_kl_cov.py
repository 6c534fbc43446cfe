"""KL-Cov (spec §1.5): no PPO clip, beta * |logp - old_logp| on the top-k covariance tokens;
the worked selection of spec §11, the on-policy pitfall of §1.7, and the scope option."""

import pytest
import torch

from entropyctl.maths.batch import TokenBatch
from entropyctl.interventions import build
from entropyctl.interventions.kl_cov import KlCovConfig, kl_cov, kl_cov_select

# spec §11: cov = [[1.3, -0.6], [-0.9, 1.6]]
A = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
LOGP = torch.tensor([[-0.1, -2.0], [-0.5, -3.0]])


def batch(logp=LOGP, old=LOGP, adv=A, mask=None):
    mask = torch.ones_like(adv) if mask is None else mask
    return TokenBatch(logp=logp.clone().requires_grad_(True), old_logp=old.clone(), adv=adv, mask=mask,
                      h=torch.zeros_like(adv), rewards=torch.zeros(adv.shape[0]))


def test_top_k_of_the_worked_example():
    # fraction 0.5 of N = 4 -> k = 2 -> (1,1) cov 1.6 and (0,0) cov 1.3
    assert kl_cov_select(batch(), KlCovConfig(frac=0.5)).nonzero().tolist() == [[0, 0], [1, 1]]
    # k = max(1, floor(2e-3 * 4)) = 1 -> the largest, (1,1)
    assert kl_cov_select(batch(), KlCovConfig(frac=2e-3)).nonzero().tolist() == [[1, 1]]


def test_on_policy_the_penalty_has_no_gradient():
    # spec §1.7: |x| has zero gradient at 0, so on-policy KL-Cov is just -A r without a clip
    b = batch()
    loss, stats = kl_cov(b, KlCovConfig(frac=0.5, coef=1.0))
    torch.testing.assert_close(loss, -A)
    loss.sum().backward()
    torch.testing.assert_close(b.logp.grad, -A)
    assert stats["kl_cov/frac_penalised"].item() == 0.5
    assert stats["kl_cov/abs_log_ratio"].item() == 0.0


def test_off_policy_penalty_on_chosen_tokens_only():
    old = LOGP - 0.1  # log-ratio 0.1 everywhere
    b = batch(old=old)
    loss, stats = kl_cov(b, KlCovConfig(frac=0.5, coef=1.0))
    r = torch.exp(torch.tensor(0.1))
    chosen = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    torch.testing.assert_close(loss, -A * r + 0.1 * chosen)
    loss.sum().backward()
    torch.testing.assert_close(b.logp.grad, -A * r + chosen)  # d|x|/dx = sign(0.1) = 1
    assert stats["kl_cov/abs_log_ratio"].item() == pytest.approx(0.1, abs=1e-6)


def test_no_ppo_clip():
    b = batch(logp=torch.log(torch.tensor([[2.0, 2.0]])), old=torch.zeros(1, 2), adv=torch.ones(1, 2))
    loss, _ = kl_cov(b, KlCovConfig(frac=1e-9, coef=0.0))
    torch.testing.assert_close(loss, torch.tensor([[-2.0, -2.0]]))  # PPO would clip at 1.2


def test_padding_is_never_penalised():
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    # all advantages equal: every cov is 0 (ties), the pick must still be a valid token
    sel = kl_cov_select(batch(adv=torch.ones(2, 2), mask=mask), KlCovConfig(frac=1.0))
    assert sel.sum() == 3 and not sel[1, 1]


def test_chosen_from_a_wider_scope_replaces_the_local_pick():
    b = batch(old=LOGP - 0.1)
    chosen = torch.tensor([[False, True], [False, False]])  # not what a local top-k would pick
    loss, stats = kl_cov(b, KlCovConfig(frac=0.5, coef=1.0), chosen)
    r = torch.exp(torch.tensor(0.1))
    torch.testing.assert_close(loss, -A * r + 0.1 * chosen.float())
    assert stats["kl_cov/frac_penalised"].item() == 0.25


def test_round_scope_selects_over_the_whole_batch_then_each_call_gets_its_rows():
    pipe = build({"kl_cov": {"frac": 0.25, "scope": "round"}})
    assert pipe.scopes == {"round"}
    sel = pipe.select(batch(), "round")["kl_cov"]
    assert sel.nonzero().tolist() == [[1, 1]]  # k = 1 over all 4 tokens
    # a loss call on row 0 alone gets row 0 of the selection: nothing penalised there
    row0 = batch(logp=LOGP[:1], old=LOGP[:1] - 0.1, adv=A[:1])
    _, stats = pipe.loss(row0, "token-mean", None, {"kl_cov": sel[:1]})
    assert stats["kl_cov/frac_penalised"].item() == 0.0
    # the default scope picks within the call: one of row 0's tokens
    _, stats = build({"kl_cov": {"frac": 0.25}}).loss(row0, "token-mean", None)
    assert stats["kl_cov/frac_penalised"].item() == 0.5
