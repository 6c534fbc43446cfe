"""Outcome advantages from rewards grouped by prompt (spec §5.1).

grpo:    A_i = (s_i - mean_g) / (std_g + eps), std unbiased (n-1), eps = 1e-6 (verl);
         a group of one has mean 0, std 1: A = s / (1 + eps)
dr_grpo: A_i =  s_i - mean_g                  (Liu et al. 2025, no std normalisation)
Responses of one prompt are contiguous groups of equal size G (the rollout guarantees it).
"""

from __future__ import annotations

from torch import Tensor


def grpo(rewards: Tensor, group_size: int, eps: float) -> Tensor:
    """(B,) -> (B,). Float64 inside so the n-1 std matches the spec's worked values."""
    r = rewards.double().view(-1, group_size)
    if group_size == 1:
        # spec §5.1 (verl): a group of one has mean 0 and std 1, so A = s / (1 + eps)
        return (r / (1.0 + eps)).view(-1).float()
    mean = r.mean(1, keepdim=True)
    std = r.std(1, unbiased=True, keepdim=True)
    return ((r - mean) / (std + eps)).view(-1).float()


def dr_grpo(rewards: Tensor, group_size: int, eps: float) -> Tensor:
    r = rewards.double().view(-1, group_size)
    if group_size == 1:
        return r.view(-1).float()
    return (r - r.mean(1, keepdim=True)).view(-1).float()


ESTIMATORS = {"grpo": grpo, "dr_grpo": dr_grpo}


def compute_advantage(rewards: Tensor, group_size: int, estimator: str, eps: float) -> Tensor:
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown advantage.estimator {estimator!r}; choose one of {sorted(ESTIMATORS)}")
    return ESTIMATORS[estimator](rewards, group_size, eps)
