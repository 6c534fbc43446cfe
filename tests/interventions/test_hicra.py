"""HICRA (spec §8.3): A' = A + alpha |A| on planning tokens, alpha = 0.2; the lab task's
planning tokens are its format prefix."""

import pytest
import torch

from entropyctl.maths.batch import TokenBatch
from entropyctl.config import TaskConfig
from entropyctl.interventions import InterventionError, build
from entropyctl.interventions.hicra import HicraConfig, hicra, hicra_advantage
from entropyctl.lab.task import AdditionTask
from entropyctl.lab.tokenizer import build_char_tokenizer


def test_planning_advantages_scale_by_one_plus_minus_alpha():
    adv = torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]])
    plan = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    out = hicra_advantage(adv, plan, 0.2)
    torch.testing.assert_close(out, torch.tensor([[1.2, 1.0, 1.0], [-0.8, -0.8, -1.0]]))


def test_gradient_on_planning_tokens_scales_through_the_surrogate():
    logp = torch.zeros(1, 3, requires_grad=True)
    b = TokenBatch(logp=logp, old_logp=torch.zeros(1, 3), adv=torch.full((1, 3), 0.5),
                   mask=torch.ones(1, 3), h=torch.zeros(1, 3), rewards=torch.zeros(1),
                   plan_mask=torch.tensor([[1.0, 1.0, 0.0]]))
    loss, stats = build({"hicra": {"alpha": 0.2}}).loss(b, "seq-mean-token-sum", None)
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.6, -0.6, -0.5]]))
    assert stats["hicra/plan_frac"].item() == pytest.approx(2 / 3)


def test_needs_a_plan_mask():
    b = TokenBatch(logp=torch.zeros(1, 2), old_logp=torch.zeros(1, 2), adv=torch.ones(1, 2),
                   mask=torch.ones(1, 2), h=torch.zeros(1, 2), rewards=torch.zeros(1))
    with pytest.raises(InterventionError, match="plan"):
        hicra(b, HicraConfig())


def test_lab_planning_tokens_are_the_format_prefix():
    task, tok = AdditionTask(TaskConfig()), build_char_tokenizer()
    texts = ["=19", " => answer 19", " #### 7", " #x", "19"]
    rows = [tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in texts]
    T = max(map(len, rows))
    ids = torch.full((len(rows), T), tok.pad_token_id)
    mask = torch.zeros(len(rows), T)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), 1.0
    plan = task.plan_mask(ids, mask, tok)
    # "=", " => answer ", " #### ", the started " #" of a malformed hash prefix, nothing for "19"
    assert plan.sum(1).tolist() == [1.0, 11.0, 6.0, 2.0, 0.0]
    assert (plan[:, :1] == 1).squeeze(1).tolist() == [True, True, True, True, False]
    assert (plan <= mask).all()  # never on padding
