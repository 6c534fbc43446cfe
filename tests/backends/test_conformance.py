"""What every rollout backend must do (docs/vllm.md): shapes, stop at end-of-sequence, seeded
reproducibility, log-probs that agree with the trainer's rescoring, and sampling from the
weights pushed after an update. torch must agree exactly up to float32 rounding of a KV-cached
versus a full forward pass; vLLM within LOGP_TOL (the measured value is reported)."""

from __future__ import annotations

import torch

from entropyctl.maths.losses import logprobs_from_logits
from entropyctl.models.scoring import completion_logits

PROMPTS = ["12+34=", "7+8=", "99+1="]
TEMPERATURE = 0.7  # not 1: the backend's log-probs must carry the temperature
N, MAX_NEW = 4, 12
LOGP_TOL = {"torch": 1e-5, "vllm": 1e-3}


def _gen(world, seed, prompts=PROMPTS, n=N, temperature=TEMPERATURE):
    backend, model, tok = world
    return backend.generate(model, tok, prompts, n, MAX_NEW, temperature, torch.Generator().manual_seed(seed))


def _mask(raw, eos):
    is_eos = raw.completion_ids == eos
    return ((is_eos.long().cumsum(1) - is_eos.long()) == 0).float()


def _trainer_logp(model, raw, mask, temperature=TEMPERATURE):
    with torch.no_grad():
        logits = completion_logits(model, raw.prompt_ids, raw.prompt_mask, raw.completion_ids, mask, temperature)
    return logprobs_from_logits(logits, raw.completion_ids)


def test_shapes(world):
    raw = _gen(world, 1)
    B = len(PROMPTS) * N
    assert raw.prompt_ids.shape[0] == raw.prompt_mask.shape[0] == raw.completion_ids.shape[0] == B
    assert raw.prompt_ids.shape == raw.prompt_mask.shape
    assert 1 <= raw.completion_ids.shape[1] <= MAX_NEW
    assert raw.logp is not None and raw.logp.shape == raw.completion_ids.shape
    assert raw.completion_ids.dtype == torch.long
    # the n samples of a prompt are contiguous and share its (left-padded) prompt
    for i in range(len(PROMPTS)):
        rows = raw.prompt_ids[i * N:(i + 1) * N]
        assert (rows == rows[:1]).all()
    assert (raw.prompt_mask.sum(1)[::N] == torch.tensor([1 + len(p) for p in PROMPTS])).all()


def test_stops_at_end_of_sequence(world):
    _, _, tok = world
    raw = _gen(world, 2, n=8)
    ids, eos, pad = raw.completion_ids, tok.eos_token_id, tok.pad_token_id
    finished = (ids == eos).any(1)
    assert finished.any() and not finished.all(), "the tiny model should stop early in some rows only"
    for row in ids:
        hits = (row == eos).nonzero()
        if len(hits):  # nothing but padding after the first end-of-sequence
            assert (row[hits[0, 0] + 1:] == pad).all()
        else:  # an unfinished row ran to the limit
            assert len(row) == MAX_NEW
    # and when every row finished early, the batch is no longer than its longest row
    assert ids.shape[1] == int(_mask(raw, eos).sum(1).max())


def test_seeded_reproducibility(world):
    a, b, c = _gen(world, 3), _gen(world, 3), _gen(world, 4)
    assert torch.equal(a.completion_ids, b.completion_ids)
    assert not torch.equal(a.completion_ids, c.completion_ids)


def test_logprobs_agree_with_the_trainer(world, report):
    backend, model, tok = world
    raw = _gen(world, 5)
    mask = _mask(raw, tok.eos_token_id)
    diff = ((raw.logp - _trainer_logp(model, raw, mask)).abs() * mask).max().item()
    report[f"{backend.name}/max_abs_logp_diff"] = diff
    assert diff <= LOGP_TOL[backend.name]


def test_samples_the_weights_pushed_after_an_update(world, report):
    backend, model, tok = world
    before = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        with torch.no_grad():  # an "update" big enough to move every distribution
            g = torch.Generator().manual_seed(7)
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
        backend.push_weights(model)
        raw = _gen(world, 6)
        mask = _mask(raw, tok.eos_token_id)
        new = _trainer_logp(model, raw, mask)
        diff = ((raw.logp - new).abs() * mask).max().item()
        report[f"{backend.name}/max_abs_logp_diff_after_push"] = diff
        assert diff <= LOGP_TOL[backend.name], f"the engine samples other weights than the trainer's ({diff:.3g} nats)"
        model.load_state_dict(before)  # and the old weights would have been told apart
        stale = ((raw.logp - _trainer_logp(model, raw, mask)).abs() * mask).max().item()
        assert stale > 100 * max(diff, 1e-6)
    finally:
        model.load_state_dict(before)
        backend.push_weights(model)
