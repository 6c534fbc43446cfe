"""Loss calls and chunking never change the numbers: a minibatch split into any number of loss
calls (optim.micro_batches or optim.micro_batch_tokens) gives the same loss and gradient as one
call (spec §3.2, global path); log-probs and entropy computed over chunks of tokens or rows
equal the one-piece computation. Real update step, tiny Llama, rows of different lengths."""

import copy

import pytest
import torch

from entropyctl.config import OptimConfig
from entropyctl.interventions import build
from entropyctl.maths.batch import Rollout, Scored
from entropyctl.maths.losses import AGG_MODES, call_weight
from entropyctl.models.loading import enable_checkpointing, encode_prompts, is_checkpointing
from entropyctl.models.scoring import ForwardBudget, completion_scores
from tests.helpers import tiny_lab_model
from entropyctl.train.update import RoundBatch, UpdateSettings, loss_calls, update

B, T = 12, 7
WHOLE = ForwardBudget(None, 512)


@pytest.fixture(scope="module")
def world():
    tok, model = tiny_lab_model(layers=1)
    prompts = [f"{a:02d}+{b:02d}" for a, b in zip(range(3, 99, 8), range(90, 0, -7))][:B]
    p_ids, p_mask = encode_prompts(tok, prompts)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, len(tok), (B, T), generator=g)
    lengths = torch.tensor([1, 7, 3, 5, 2, 7, 4, 6, 1, 3, 7, 2])  # uneven: splits see different counts
    mask = (torch.arange(T)[None] < lengths[:, None]).float()
    ro = Rollout(p_ids, p_mask, ids, mask, [""] * B, torch.arange(B // 4).repeat_interleave(4), [None] * B)
    with torch.no_grad():
        logp, h = completion_scores(model, p_ids, p_mask, ids, mask, 1.0, WHOLE)
    # off-policy old log-probs, so the ratio (and the PPO clip) is not trivially 1
    old = logp + 0.3 * torch.randn(B, T, generator=g)
    scored = Scored(old, h, logp - 0.1)
    rewards = torch.tensor([1.0, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 1])
    adv = torch.randn(B, generator=g)
    return model, RoundBatch(ro, scored, adv, rewards)


def grads(world, selection=None, budget=WHOLE, **optim):
    """(minus the gradient, as SGD at lr 1 applies it; the update's stats)."""
    model, batch = world
    model = copy.deepcopy(model)
    cfg = OptimConfig(**{"minibatches": 1, "grad_clip": 1e9, **optim})
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    stats = update(model, torch.optim.SGD(model.parameters(), lr=1.0), batch, build(selection or {"grpo": None}),
                   UpdateSettings(cfg, 1.0, torch.Generator().manual_seed(0), budget))
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    return after - before, stats


@pytest.mark.parametrize("mode", AGG_MODES)
def test_loss_and_gradient_do_not_depend_on_the_split(world, mode):
    one, s1 = grads(world, agg_mode=mode)
    assert one.abs().max() > 1e-4  # the step moves the weights
    L = world[1].ro.prompt_ids.shape[1] + T
    for split in ({"micro_batches": 3}, {"micro_batches": 5}, {"micro_batch_tokens": 2 * L},
                  {"micro_batch_tokens": 1}):
        got, s = grads(world, agg_mode=mode, **split)
        assert (got - one).abs().max().item() <= 1e-6, (mode, split)
        assert s["loss/policy"] == pytest.approx(s1["loss/policy"], abs=1e-6)


def test_penalties_and_the_kl_anchor_are_split_invariant_too(world):
    sel = {"grpo": None, "entropy_bonus": {"coef": 0.01}, "kl_anchor": {"coef": 0.1}}
    one, _ = grads(world, sel)
    got, _ = grads(world, sel, micro_batch_tokens=1)
    assert (got - one).abs().max().item() <= 1e-6


def test_the_micro_batch_local_norm_depends_on_the_split(world):
    # each call normalised by its own tokens, weighted 1/#calls: uneven calls weigh tokens unevenly
    one, _ = grads(world, loss_norm="micro_batch")
    got, _ = grads(world, loss_norm="micro_batch", micro_batches=3)
    assert (got - one).abs().max().item() > 1e-5


def test_the_call_weights_of_a_split_add_up_to_one():
    mask = torch.tensor([[1.0, 1, 0], [0, 0, 0], [1, 0, 0], [1, 1, 1]])
    for mode in ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean"):
        w = [call_weight(mask[i:i + 2], mask, mode) for i in (0, 2)]
        assert sum(w).item() == pytest.approx(1.0)
    assert call_weight(mask[:2], mask, "token-mean").item() == pytest.approx(2 / 6)
    assert call_weight(mask[:2], mask, "seq-mean-token-sum").item() == pytest.approx(1 / 3)  # empty row skipped
    assert call_weight(mask[:2], mask, "seq-mean-token-sum-norm").item() == 1.0


def test_a_token_budget_sets_the_rows_per_call():
    idx = torch.arange(10)
    assert [len(c) for c in loss_calls(idx, OptimConfig(micro_batch_tokens=64), 20)] == [3, 3, 3, 1]
    assert [len(c) for c in loss_calls(idx, OptimConfig(micro_batch_tokens=5), 20)] == [1] * 10
    assert [len(c) for c in loss_calls(idx, OptimConfig(micro_batches=2, micro_batch_tokens=0), 20)] == [5, 5]


def test_chunked_log_probs_and_entropy_equal_the_one_piece_pass(world):
    model, batch = world
    ro = batch.ro
    args = (ro.prompt_ids, ro.prompt_mask, ro.completion_ids, ro.completion_mask, 0.7)
    lp, h = completion_scores(model, *args, WHOLE)
    V = model.get_output_embeddings().weight.shape[0]
    for budget in (ForwardBudget(None, 5 * 4 * V / 2**20),  # head over 5 tokens at a time
                   ForwardBudget(3 * ro.prompt_ids.shape[1], 512),  # forward passes of 2 rows
                   ForwardBudget(1, 1 * 4 * V / 2**20)):  # one row per pass, one token per chunk
        lp2, h2 = completion_scores(model, *args, budget)
        assert torch.allclose(lp, lp2, atol=1e-6, rtol=0) and torch.allclose(h, h2, atol=1e-6, rtol=0)
    # and the gradient through the chunked (checkpointed) head is the same
    chunked = ForwardBudget(None, 5 * 4 * V / 2**20)
    g = []
    for budget in (WHOLE, chunked):
        m = copy.deepcopy(model)
        lp, h = completion_scores(m, *args, budget)
        ((lp * ro.completion_mask).sum() + h.sum()).backward()
        g.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
    assert (g[0] - g[1]).abs().max().item() <= 1e-5 * g[0].abs().max().item(), (g[0] - g[1]).abs().max()


def test_chunked_micro_batches_match_one_plain_call(world):
    V = world[0].get_output_embeddings().weight.shape[0]
    one, _ = grads(world)
    got, _ = grads(world, budget=ForwardBudget(None, 4 * 4 * V / 2**20), micro_batch_tokens=40)
    assert (got - one).abs().max().item() <= 1e-6


def test_gradient_checkpointing_changes_no_gradient(world):
    model, batch = world
    one, _ = grads(world)
    ckpt = copy.deepcopy(model)
    enable_checkpointing(ckpt)
    assert is_checkpointing(ckpt)
    got, _ = grads((ckpt, batch))
    assert (got - one).abs().max().item() <= 1e-6


def test_minibatches_of_rows_or_of_whole_groups():
    from entropyctl.train.update import minibatch_rows

    group_ids = torch.arange(12).repeat_interleave(4)  # 12 prompts x G = 4, contiguous as sampled
    rows = minibatch_rows(group_ids, 5, "rows", torch.Generator().manual_seed(3))
    # rows: the permutation the update always drew (the lab's numbers depend on it)
    assert [r.tolist() for r in rows] == [r.tolist() for r in torch.randperm(48, generator=torch.Generator().manual_seed(3)).chunk(5)]
    parts = minibatch_rows(group_ids, 5, "groups", torch.Generator().manual_seed(3))
    assert sorted(torch.cat(parts).tolist()) == list(range(48))  # every row once
    held = [sorted(set(group_ids[p].tolist())) for p in parts]
    for p, gs in zip(parts, held):
        assert len(p) == 4 * len(gs)  # whole groups only
    assert [len(g) for g in held] == [3, 3, 2, 2, 2]  # 5 minibatches, as asked
    assert len(minibatch_rows(torch.arange(3).repeat_interleave(4), 8, "groups", torch.Generator())) == 3
    assert [g for gs in held for g in gs] != list(range(12))  # the groups are shuffled
