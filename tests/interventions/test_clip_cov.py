"""Clip-Cov (spec §1.4) against the worked values of spec §11."""

import torch

from entropyctl.maths.batch import TokenBatch
from entropyctl.interventions.clip_cov import ClipCovConfig, clip_cov, clip_cov_candidates
from entropyctl.maths.losses import centred_cov

# spec §11: A = [[1,1],[-1,-1]], logp = [[-0.1,-2.0],[-0.5,-3.0]] -> cov = [[1.3,-0.6],[-0.9,1.6]]
A = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
LOGP = torch.tensor([[-0.1, -2.0], [-0.5, -3.0]])
MASK = torch.ones(2, 2)


def make_batch(logp=LOGP, old=LOGP, adv=A, mask=MASK):
    lp = logp.clone().requires_grad_(True)
    return TokenBatch(logp=lp, old_logp=old.clone(), adv=adv, mask=mask, h=torch.zeros_like(old),
                      rewards=torch.zeros(old.shape[0]))


def test_centred_covariance_worked_value():
    cov = centred_cov(LOGP, A, MASK)
    torch.testing.assert_close(cov, torch.tensor([[1.3, -0.6], [-0.9, 1.6]]))


def test_candidate_set_is_the_two_tokens_in_the_band():
    cand = clip_cov_candidates(centred_cov(LOGP, A, MASK), MASK.bool(), 1.0, 5.0)
    assert cand.nonzero().tolist() == [[0, 0], [1, 1]]


def test_detaches_exactly_one_candidate_with_zero_gradient():
    torch.manual_seed(0)
    b = make_batch()
    loss, stats = clip_cov(b, ClipCovConfig(frac=2e-4))  # n_clip = max(1, floor(2e-4 * 4)) = 1
    assert stats["clip_cov/frac_detached"].item() == 0.25
    assert stats["clip_cov/candidates"].item() == 2
    loss.sum().backward()
    grad = b.logp.grad
    zero = (grad == 0).nonzero().tolist()
    assert len(zero) == 1 and zero[0] in ([0, 0], [1, 1])
    # every other token keeps the vanilla on-policy gradient -A * r = -A
    keep = grad != 0
    torch.testing.assert_close(grad[keep], (-A)[keep])
    assert loss[tuple(zero[0])].item() == 0.0


def test_large_fraction_detaches_all_candidates_but_no_others():
    torch.manual_seed(0)
    b = make_batch()
    loss, stats = clip_cov(b, ClipCovConfig(frac=1.0))
    assert stats["clip_cov/frac_detached"].item() == 0.5
    loss.sum().backward()
    assert b.logp.grad[0, 0] == 0 and b.logp.grad[1, 1] == 0
    assert b.logp.grad[0, 1] != 0 and b.logp.grad[1, 0] != 0


def test_no_candidates_when_all_advantages_equal():
    # spec §1.7: one group with one advantage -> every cov is 0 -> nothing selected
    b = make_batch(adv=torch.ones(2, 2))
    _, stats = clip_cov(b, ClipCovConfig(frac=1.0))
    assert stats["clip_cov/frac_detached"].item() == 0.0


def test_padding_is_never_a_candidate():
    # per-token losses on padding are removed by the aggregation, not by Clip-Cov; what Clip-Cov
    # must guarantee is that the centring and the picks see valid tokens only
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    logp = torch.tensor([[-0.1, -2.0], [-0.5, -30.0]])  # huge padding logp would dominate a mean
    cov = centred_cov(logp, A, mask)
    assert cov[1, 1] == 0
    torch.manual_seed(0)
    b = make_batch(logp=logp, old=logp, mask=mask)
    _, stats = clip_cov(b, ClipCovConfig(frac=1.0))
    cand = clip_cov_candidates(cov, mask.bool(), 1.0, 5.0)
    assert not cand[1, 1]
    assert stats["clip_cov/frac_detached"].item() == cand.sum().item() / 3
