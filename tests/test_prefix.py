"""Prompts read once for the rows that share them (models/prefix.py): the scores and gradients
of completion_scores with shared prompts against one full forward pass over every row, when
prompts of different lengths are left-padded, when rows are in length groups, in row chunks and
under the chunked head; and when sharing is (not) used.

Measured on this project's 2-core CPU (a 2-layer Qwen2, hidden 64, 64 prompts x G = 8, 32-token
completions; the whole round without gradients / the update's 8 minibatches of 64 random rows):

| prompt tokens | whole round | update |
|---|---|---|
| 8 | 1.25x | 0.86x |
| 32 | 2.3x | 0.80x |
| 64 | 2.8x | 1.47x |
| 128 | 3.8-4.3x | 1.25-1.40x |
| 256 | 7.5-9.3x | 1.35-1.59x |
"""

from __future__ import annotations

import random

import pytest
import torch

from entropyctl.maths.entropy import entropy_from_logits
from entropyctl.maths.losses import logprobs_from_logits
from entropyctl.models.loading import enable_checkpointing, encode_prompts, load_policy
from entropyctl.models.prefix import MIN_PROMPT_TOKENS, distinct_prompts, read_prompts, worth_sharing
from entropyctl.models.scoring import ForwardBudget, completion_logits, completion_scores
from tests.hf_fixtures import tiny_checkpoint

G = 8


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    torch.manual_seed(0)
    model, tok = load_policy(tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "qwen", "qwen2", hidden=32,
                                             layers=2))
    rng = random.Random(0)
    words = "Tom has apples and gives some to Ann who eats half of what is left over".split()
    # 12 prompts of 30-60 words: left-padded to the longest, each repeated G times (a round's rows)
    prompts = [" ".join(rng.choice(words) for _ in range(rng.randint(30, 60))) for _ in range(12)]
    p_ids, p_mask = encode_prompts(tok, [p for p in prompts for _ in range(G)])
    gen = torch.Generator().manual_seed(1)
    B, T = p_ids.shape[0], 20
    c_ids = torch.randint(3, len(tok), (B, T), generator=gen)
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    c_mask = (torch.arange(T)[None] < lengths[:, None]).float()
    return model, (p_ids, p_mask, c_ids, c_mask)


def reference(model, args, temperature=0.7):
    logits = completion_logits(model, *args, temperature)
    return logprobs_from_logits(logits, args[2]), entropy_from_logits(logits)


def test_the_fixture_shares_and_short_prompts_do_not(world):
    model, (p_ids, p_mask, _, _) = world
    assert p_mask.sum(1).min() < p_mask.shape[1]  # some rows are left-padded
    assert read_prompts(model.get_decoder(), p_ids, p_mask) is not None
    ids, mask, inverse = distinct_prompts(p_ids, p_mask)
    assert len(ids) == 12 and torch.equal(ids[inverse], p_ids) and torch.equal(mask[inverse], p_mask)
    short = p_ids[:, -MIN_PROMPT_TOKENS + 1:], p_mask[:, -MIN_PROMPT_TOKENS + 1:]
    assert read_prompts(model.get_decoder(), *short) is None
    # Under a token budget the distinct prompts go through in passes of budget // P rows: the same cache.
    with torch.no_grad():
        whole = read_prompts(model.get_decoder(), p_ids, p_mask)
        parts = read_prompts(model.get_decoder(), p_ids, p_mask, rows_tokens=5 * p_ids.shape[1])  # 3 passes
    assert torch.allclose(whole.last, parts.last, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for x, y in zip(whole.kv, parts.kv) for a, b in zip(x, y))


@pytest.mark.parametrize("budget", [ForwardBudget(None, 256.0), ForwardBudget(700, 256.0), ForwardBudget(None, 0.01)],
                         ids=["one-pass", "row-chunks", "chunked-head"])
def test_shared_prompts_score_what_the_full_pass_scores(world, budget):
    model, args = world
    with torch.no_grad():
        want_lp, want_h = reference(model, args)
        got_lp, got_h = completion_scores(model, *args, 0.7, budget)
    mask = args[3].bool()
    assert (got_lp - want_lp)[mask].abs().max() < 2e-5
    assert (got_h - want_h)[mask].abs().max() < 2e-5


def test_gradients_flow_through_the_shared_prompts(world):
    """A random minibatch of rows (what the update scores) with sharing, against the full pass:
    the gradient of every weight, the embedding's prompt rows included."""
    model, args = world
    idx = torch.randperm(args[0].shape[0], generator=torch.Generator().manual_seed(2))[:64]
    sub = [a[idx] for a in args]
    assert read_prompts(model.get_decoder(), sub[0], sub[1]) is not None

    def grads(fn):
        model.zero_grad(set_to_none=True)
        lp, h = fn()
        ((lp * sub[3]).sum() + (h * sub[3]).sum()).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    want = grads(lambda: reference(model, sub))
    got = grads(lambda: completion_scores(model, *sub, 0.7, ForwardBudget(None, 256.0)))
    assert want.keys() == got.keys() and len(want) > 10
    for name in want:
        scale = want[name].abs().max().clamp(min=1e-6)
        assert ((got[name] - want[name]).abs().max() / scale) < 1e-4, name


def test_no_sharing_under_activation_checkpointing(tmp_path):
    """Checkpointed layers drop their cache argument in training: the shared path would score
    completions that never saw their prompt. The full pass is taken, and the values agree."""
    model, tok = load_policy(tiny_checkpoint(tmp_path / "q", "qwen2", hidden=32, layers=1))
    enable_checkpointing(model)
    model.train()
    p_ids, p_mask = encode_prompts(tok, ["Tom has apples and gives some to Ann " * 8] * 64)
    c_ids = torch.randint(3, len(tok), (64, 6), generator=torch.Generator().manual_seed(0))
    c_mask = torch.ones(64, 6)
    lp, _ = completion_scores(model, p_ids, p_mask, c_ids, c_mask, 1.0, ForwardBudget(None, 256.0))
    want, _ = reference(model, (p_ids, p_mask, c_ids, c_mask), 1.0)
    assert (lp - want).abs().max() < 2e-5


def test_when_sharing_pays():
    assert worth_sharing(512, 64, 64 * 100)  # a chat prompt, G = 8
    assert not worth_sharing(512, 64, 64 * 6)  # the lab's prompts: too short to pay for a call
    assert not worth_sharing(64, 40, 40 * 32)  # 24 rows x 32 tokens saved: under the minimum
    assert not worth_sharing(64, 64, 64 * 500)  # nothing repeats

