"""Scoring a rollout against its task: rewards (B,) and the answer format of each response."""

from __future__ import annotations

import torch
from torch import Tensor

from entropyctl.maths.batch import Rollout


def score(rollout: Rollout, task) -> tuple[Tensor, list[str]]:
    """(rewards (B,) float in {0, 1}, format name per response ('unknown' when none))."""
    rewards = torch.tensor([task.score(t, p) for t, p in zip(rollout.texts, rollout.problems)])
    formats = [task.classify(t) for t in rollout.texts]
    return rewards, formats
