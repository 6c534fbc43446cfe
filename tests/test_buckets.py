"""Scoring rows in groups of similar completion length (models/buckets.py): the plan, and the
scores it gives against one padded forward pass."""

from __future__ import annotations

import torch

from entropyctl.models.buckets import plan_groups, row_lengths
from entropyctl.models.scoring import ForwardBudget, completion_logits, completion_scores
from entropyctl.maths.losses import logprobs_from_logits
from tests.helpers import tiny_lab_model


def padded_cost(groups, prefix, call):
    return sum(len(rows) * (prefix + t) + call for rows, t in groups)


def test_row_lengths_is_one_past_the_last_real_token():
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0], [1, 0, 1, 0]])
    assert row_lengths(mask).tolist() == [2, 4, 0, 3]


def test_bimodal_lengths_split_and_every_row_is_in_one_group_cut_to_its_longest():
    lengths = [4] * 50 + [15] * 14  # the lab's `=83<eos>` beside ` => answer 83<eos>`
    groups = plan_groups(lengths, prefix=6, call_tokens=160)
    assert len(groups) == 2
    rows = sorted(i for g, _ in groups for i in g)
    assert rows == list(range(64))
    for g, t in groups:
        assert t == max(lengths[i] for i in g)
    one = [(list(range(64)), 15)]
    assert padded_cost(groups, 6, 160) < padded_cost(one, 6, 160)


def test_a_split_must_pay_for_its_extra_pass():
    assert len(plan_groups([9] * 64, prefix=6)) == 1  # nothing to cut
    assert len(plan_groups([4] * 3 + [5] * 61, prefix=6, call_tokens=160)) == 1  # saves 3 tokens
    assert plan_groups([4] * 3 + [5] * 61, prefix=6, call_tokens=0)[0] == ([0, 1, 2], 4)
    assert len(plan_groups([1, 2, 3, 4, 5, 6, 7, 8] * 40, prefix=0, call_tokens=0, max_groups=3)) == 3


def test_grouped_scores_equal_one_padded_pass_and_are_zero_after_each_row():
    _, model = tiny_lab_model(layers=2, seed=0)
    B, P, T = 48, 5, 12
    p_ids = torch.randint(5, 60, (B, P))
    p_mask = torch.ones(B, P, dtype=torch.long)
    p_mask[:4, :2] = 0  # some left padding
    ids = torch.randint(5, 60, (B, T))
    lengths = torch.tensor([3] * 32 + [12] * 16)[torch.randperm(B)]
    mask = (torch.arange(T)[None] < lengths[:, None]).float()
    with torch.no_grad():
        lp, h = completion_scores(model, p_ids, p_mask, ids, mask, 0.7, ForwardBudget(None, 512.0))
        full = completion_logits(model, p_ids, p_mask, ids, torch.ones(B, T), 0.7)
    assert len(plan_groups(lengths.tolist(), P)) == 2  # this batch really was split
    valid = mask.bool()
    assert torch.allclose(lp[valid], logprobs_from_logits(full, ids)[valid], atol=2e-5)
    assert (lp[~valid] == 0).all() and (h[~valid] == 0).all()


def test_gradients_through_groups_equal_one_padded_pass():
    _, model = tiny_lab_model(layers=2, seed=1)
    B, P, T = 40, 4, 10
    args = (torch.randint(5, 60, (B, P)), torch.ones(B, P, dtype=torch.long), torch.randint(5, 60, (B, T)))
    lengths = torch.tensor([2] * 30 + [10] * 10)
    assert len(plan_groups(lengths.tolist(), P)) == 2
    mask = (torch.arange(T)[None] < lengths[:, None]).float()

    def grads(fn):
        model.zero_grad()
        lp = fn()
        (lp * mask).sum().backward()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    grouped = grads(lambda: completion_scores(model, *args, mask, 1.0, ForwardBudget(None, 512.0))[0])
    plain = grads(lambda: logprobs_from_logits(completion_logits(model, *args, torch.ones(B, T), 1.0), args[2]))
    assert torch.allclose(grouped, plain, atol=1e-5, rtol=1e-4)
