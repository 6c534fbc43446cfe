"""Scoring a rollout against its task: rewards (B,) and the answer format of each response;
and a few scored responses as records a researcher can read (the run's samples.jsonl)."""

from __future__ import annotations

import random

import torch
from torch import Tensor

from entropyctl.maths.batch import Rollout


def score(rollout: Rollout, task) -> tuple[Tensor, list[str]]:
    """(rewards (B,) float in {0, 1}, format name per response ('unknown' when none))."""
    done = rollout.finished.tolist()
    rewards = torch.tensor([task.score(t, p, f) for t, p, f in zip(rollout.texts, rollout.problems, done)])
    formats = [task.classify(t, f) for t, f in zip(rollout.texts, done)]
    return rewards, formats


def readable_samples(round_index: int, rollout: Rollout, rewards: Tensor, formats: list[str], n: int,
                     rng: random.Random) -> list[dict]:
    """`n` responses drawn with `rng` (no repeats), in rollout order, as
    {round, prompt, completion, reward, format, finished}; the prompt as the policy saw it."""
    idx = sorted(rng.sample(range(rollout.size), min(n, rollout.size)))
    return [{"round": round_index, "prompt": rollout.problems[i].prompt, "completion": rollout.texts[i],
             "reward": float(rewards[i]), "format": formats[i], "finished": bool(rollout.finished[i])}
            for i in idx]
