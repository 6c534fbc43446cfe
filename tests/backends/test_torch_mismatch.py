"""With rollout=torch the trainer samples its own rollouts: the mismatch is zero (to float32
rounding of the KV-cached sampling pass against the full rescoring pass) and every correction
weight is 1 (spec §14)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from entropyctl.models.scoring import ForwardBudget
from entropyctl.config import RolloutConfig
from entropyctl.models.loading import load_policy
from entropyctl.train.rescore import rescore
from entropyctl.train.rollout import mismatch, sample


@dataclass
class P:
    prompt: str


@pytest.fixture(scope="module")
def round_(checkpoint):
    """One torch-backend rollout of the tiny model and its rescoring, at temperature 0.8."""
    model, tok = load_policy(checkpoint, "eager")
    model.eval()
    ro = sample(model, tok, [P("12+34="), P("5+5=")], 4, 10, 0.8, torch.Generator().manual_seed(0),
                backend="torch")
    return ro, rescore(model, None, ro, 0.8, ForwardBudget(None, 512))


@pytest.mark.parametrize("mode", ["token_tis", "token_mis", "seq_tis", "seq_mis"])
def test_torch_backend_has_no_mismatch(round_, mode):
    ro, scored = round_
    assert ro.rollout_logp is not None and ro.rollout_logp.shape == ro.completion_ids.shape
    scored, m = mismatch(ro, scored, RolloutConfig(correction=mode))
    assert abs(m["mismatch/kl_k1"]) < 1e-6 and abs(m["mismatch/kl_k3"]) < 1e-10
    for q in ("p01", "p50", "p99", "max"):
        assert m[f"mismatch/ratio_{q}"] == pytest.approx(1.0, abs=1e-5)
    assert m["correction/frac"] == 0.0
    valid = ro.completion_mask.bool()
    torch.testing.assert_close(scored.is_weight[valid], torch.ones(int(valid.sum())), atol=1e-5, rtol=0)


def test_no_correction_leaves_no_weight(round_):
    ro, scored = round_
    scored, m = mismatch(ro, scored, RolloutConfig())
    assert scored.is_weight is None and "correction/frac" not in m
