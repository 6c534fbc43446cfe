import math

import torch

from entropyctl.maths import entropy as E


def test_uniform_over_four_is_ln4():
    h = E.entropy_from_logits(torch.zeros(4))
    assert abs(h.item() - 1.3862944) < 1e-6


def test_worked_value_spec_11():
    logits = torch.log(torch.tensor([0.7, 0.2, 0.1]))
    assert abs(E.entropy_from_logits(logits).item() - 0.8018186) < 1e-6


def test_stable_for_huge_logits():
    h = E.entropy_from_logits(torch.tensor([1000.0, 0.0, -1000.0]))
    assert torch.isfinite(h) and abs(h.item()) < 1e-6


def test_temperature_scaling_raises_entropy():
    logits = torch.log(torch.tensor([0.7, 0.2, 0.1]))
    assert E.entropy_from_logits(logits / 2.0) > E.entropy_from_logits(logits)


def test_four_aggregations_on_a_hand_typed_batch():
    # response 0: 3 tokens with h 1, 2, 3; response 1: 1 token with h 4 (then padding)
    h = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
    mask = torch.tensor([[1.0, 1, 1], [1, 0, 0]])
    assert E.tokmean(h, mask).item() == (1 + 2 + 3 + 4) / 4
    assert E.seqmean(h, mask).item() == (2.0 + 4.0) / 2
    assert E.seqsum(h, mask).item() == (6.0 + 4.0) / 2
    assert E.first(h, mask).item() == (1.0 + 4.0) / 2


def test_seqmean_skips_empty_responses():
    h = torch.tensor([[1.0, 1.0], [5.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    assert E.seqmean(h, mask).item() == 1.0
    assert not math.isnan(E.seqmean(h, mask).item())
