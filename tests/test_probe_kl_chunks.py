"""The probes' exact KL (train/probes.exact_kl_mean) applies the output heads to chunks of
positions when a row chunk's logits would pass model.logits_chunk_mb (16 rows x 1k tokens x a
152k vocabulary: ~100 GB in float64, an out-of-memory at round 0's probe): the same KL."""

from __future__ import annotations

import pytest
import torch

from entropyctl.maths.batch import Rollout
from entropyctl.models.loading import load_policy
from entropyctl.train.probes import KL_BYTES_PER_VOCAB, exact_kl_mean
from tests.hf_fixtures import tiny_checkpoint


def test_exact_kl_in_position_chunks_is_the_full_logits_kl(tmp_path):
    p_model, tok = load_policy(tiny_checkpoint(tmp_path / "p", "qwen2", hidden=32, layers=2, seed=0))
    q_model, _ = load_policy(tiny_checkpoint(tmp_path / "q", "qwen2", hidden=32, layers=2, seed=1))
    gen = torch.Generator().manual_seed(0)
    B, P, T = 19, 9, 12  # a chunk of 16 rows and a ragged one
    p_mask = torch.ones(B, P, dtype=torch.long)
    p_mask[::3, :4] = 0  # some prompts left-padded
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    ro = Rollout(torch.randint(3, len(tok), (B, P), generator=gen), p_mask,
                 torch.randint(3, len(tok), (B, T), generator=gen),
                 (torch.arange(T)[None] < lengths[:, None]).float(),
                 texts=[""] * B, group_ids=torch.arange(B), problems=[None] * B)
    V = p_model.get_output_embeddings().weight.shape[0]
    seven = 7 * KL_BYTES_PER_VOCAB * V / 2**20  # MiB for 7 positions at a time
    full = exact_kl_mean(p_model, q_model, ro, 0.7, logits_mb=512.0)
    chunked = exact_kl_mean(p_model, q_model, ro, 0.7, logits_mb=seven)
    assert full > 1e-3 and chunked == pytest.approx(full, rel=1e-6)
    assert exact_kl_mean(p_model, p_model, ro, 0.7, logits_mb=seven) == pytest.approx(0.0, abs=1e-12)


def test_last_token_states_in_passes_are_those_of_one_pass(tmp_path):
    """The CKA and sparsity probes read every layer's state at each prompt's last token; the
    prompts go through in passes within model.logits_chunk_mb, the decoder alone (no logits):
    the states of one full-model pass."""
    from entropyctl.models.loading import encode_prompts, positions
    from entropyctl.train.probes import last_token_hidden

    model, tok = load_policy(tiny_checkpoint(tmp_path / "p", "qwen2", hidden=32, layers=2))
    prompts = [f"Tom has {i} apples and gives {i % 5} to Ann" + " again" * (i % 4) for i in range(11)]
    ids, mask = encode_prompts(tok, prompts)
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask, position_ids=positions(mask),
                     output_hidden_states=True).hidden_states
    row_mib = ids.shape[1] * 3 * 32 * 4 / 2**20  # one prompt's states of 3 layers' outputs, float32
    for budget in (512.0, 4 * row_mib):  # one pass; passes of 4 prompts
        got = last_token_hidden(model, tok, prompts, budget)
        assert len(got) == len(want) == 3
        for g, w in zip(got, want):
            assert g.shape == (11, 32) and torch.allclose(g, w[:, -1].double(), atol=1e-6)
