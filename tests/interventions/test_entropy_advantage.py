"""Entropy-based advantage shaping (spec §15): A' = A + min(alpha sg(h), |A| / kappa), never
flipping the sign of A."""

import pytest
import torch

from entropyctl.interventions import InterventionError, build
from entropyctl.interventions.entropy_advantage import EntropyAdvantageConfig, entropy_advantage
from entropyctl.maths.batch import TokenBatch


def batch(adv, h, mask=None):
    h = torch.tensor(h, requires_grad=True)
    adv = torch.tensor(adv)
    return TokenBatch(logp=torch.zeros_like(adv, requires_grad=True), old_logp=torch.zeros_like(adv),
                      adv=adv, mask=torch.ones_like(adv) if mask is None else torch.tensor(mask),
                      h=h, rewards=torch.zeros(adv.shape[0]))


def test_bonus_is_capped_by_the_advantage():
    # alpha h = 0.2, 1.2, 1.2, 0.8; |A| / kappa = 0.5, 0.5, 0.5, 0 -> bonus 0.2, 0.5, 0.5, 0
    b = batch([[1.0, 1.0, -1.0, 0.0]], [[0.5, 3.0, 3.0, 2.0]])
    out, stats = entropy_advantage(b, EntropyAdvantageConfig(alpha=0.4, kappa=2.0))
    torch.testing.assert_close(out.adv, torch.tensor([[1.2, 1.5, -0.5, 0.0]]))
    assert stats["entropy_advantage/bonus"].item() == pytest.approx(1.2 / 4)
    assert stats["entropy_advantage/frac_capped"].item() == pytest.approx(2 / 4)  # A = 0 is not counted


def test_never_flips_the_sign_and_skips_padding():
    torch.manual_seed(0)
    adv, h = torch.randn(8, 16), torch.rand(8, 16) * 5
    mask = (torch.rand(8, 16) > 0.2).float()
    b = batch(adv.tolist(), h.tolist(), mask.tolist())
    out, _ = entropy_advantage(b, EntropyAdvantageConfig(alpha=1.0, kappa=1.01))
    assert (torch.sign(out.adv) == torch.sign(adv)).all()
    assert (out.adv >= adv).all()
    torch.testing.assert_close(out.adv[mask == 0], adv[mask == 0])


def test_gradient_flows_through_the_shaped_advantage_not_the_entropy():
    b = batch([[1.0, 1.0, -1.0, 0.0]], [[0.5, 3.0, 3.0, 2.0]])
    loss, _ = build({"entropy_advantage": {"alpha": 0.4, "kappa": 2.0}}).loss(b, "seq-mean-token-sum", None)
    loss.backward()
    torch.testing.assert_close(b.logp.grad, torch.tensor([[-1.2, -1.5, 0.5, 0.0]]))  # -A' on-policy
    assert b.h.grad is None  # sg(h): the bonus adds no entropy gradient


def test_kappa_at_most_one_is_refused():
    with pytest.raises(InterventionError, match="kappa"):
        EntropyAdvantageConfig(kappa=1.0)
