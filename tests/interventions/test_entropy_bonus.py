"""Entropy bonus (spec §5.3): loss = pg_loss - c_H * agg(h)."""

import torch

from entropyctl.maths.batch import TokenBatch
from entropyctl.interventions import build
from entropyctl.interventions.entropy_bonus import EntropyBonusConfig, entropy_bonus


def test_penalty_is_minus_coef_times_entropy_with_gradient():
    logits = torch.tensor([[[0.0, 1.0, 2.0], [0.0, 0.0, 0.0]]], requires_grad=True)
    from entropyctl.maths.entropy import entropy_from_logits

    h = entropy_from_logits(logits)
    b = TokenBatch(logp=torch.zeros(1, 2), old_logp=torch.zeros(1, 2), adv=torch.zeros(1, 2),
                   mask=torch.ones(1, 2), h=h, rewards=torch.zeros(1))
    pen, stats = entropy_bonus(b, EntropyBonusConfig(coef=0.02))
    torch.testing.assert_close(pen, -0.02 * h)
    assert abs(stats["entropy_bonus/h"].item() - h.mean().item()) < 1e-6
    pen.sum().backward()
    # minimising -c*h pushes the peaked position towards uniform: gradient on its top logit > 0
    assert logits.grad[0, 0, 2] > 0
    # the uniform position is at the entropy maximum: zero gradient
    assert torch.allclose(logits.grad[0, 1], torch.zeros(3), atol=1e-7)


def test_stacks_on_grpo_and_aggregates_once():
    pipe = build({"entropy_bonus": {"coef": 0.5}})
    assert pipe.names == ["grpo", "entropy_bonus"]
    h = torch.tensor([[1.0, 3.0, 7.0]])
    b = TokenBatch(logp=torch.zeros(1, 3), old_logp=torch.zeros(1, 3), adv=torch.zeros(1, 3),
                   mask=torch.tensor([[1.0, 1.0, 0.0]]), h=h, rewards=torch.zeros(1))
    loss, _ = pipe.loss(b, "token-mean", None)
    # A = 0: only the bonus, token-mean over the two valid tokens
    assert abs(loss.item() - (-0.5 * (1.0 + 3.0) / 2)) < 1e-6


def test_run_label_is_what_the_user_selected():
    assert build({"entropy_bonus": {}}).label == "entropy_bonus"
    assert build({}).label == "grpo"
    assert build({"clip_higher": {}, "entropy_bonus": {}}).label == "clip_higher+entropy_bonus"
