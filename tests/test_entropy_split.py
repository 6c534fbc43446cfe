"""The cheap per-round entropy metrics of issue 10: planning vs execution tokens, percentiles,
forking tokens (top 20 % by entropy) vs the rest, on a hand-made batch."""

from __future__ import annotations

import math

import pytest
import torch

from entropyctl.train.metrics import entropy_split_metrics

# Valid tokens 1, 2, 3 | 4, 5 (the 9.0 is padding and must never count).
H = torch.tensor([[1.0, 2.0, 3.0, 9.0], [4.0, 5.0, 0.0, 0.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
PLAN = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 0.0, 0.0]])  # the 1 on padding must be ignored


def test_plan_and_exec_are_token_means_over_their_sets():
    out = entropy_split_metrics(H, MASK, PLAN)
    assert out["entropy/plan"] == pytest.approx((1 + 4 + 5) / 3)
    assert out["entropy/exec"] == pytest.approx((2 + 3) / 2)


def test_percentiles_interpolate_between_sorted_tokens():
    out = entropy_split_metrics(H, MASK, PLAN)
    # sorted [1, 2, 3, 4, 5]: p10 sits 0.4 of the way from 1 to 2, p90 0.6 from 4 to 5
    assert (out["entropy/p10"], out["entropy/p50"], out["entropy/p90"]) == pytest.approx((1.4, 3.0, 4.6))


def test_fork_is_the_top_fifth_by_entropy_and_nonfork_the_rest():
    out = entropy_split_metrics(H, MASK, PLAN)
    # N = 5, k = ceil(0.2 * 5) = 1: the fork is the 5, the rest average (1+2+3+4)/4
    assert out["entropy/fork"] == pytest.approx(5.0)
    assert out["entropy/nonfork"] == pytest.approx(2.5)


def test_a_round_without_planning_tokens_logs_nan_for_plan_only():
    out = entropy_split_metrics(H, MASK, torch.zeros_like(H))
    assert math.isnan(out["entropy/plan"])
    assert out["entropy/exec"] == pytest.approx(3.0)
    assert "entropy/plan" not in entropy_split_metrics(H, MASK, None)
