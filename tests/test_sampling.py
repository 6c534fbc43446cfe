"""Dynamic sampling (spec §3.3): the group filter and the rollout plumbing as pure functions,
then one real round of the smoke model with the switch on (its base comes from the
repository's runs/.cache, pretrained there in seconds when missing)."""

import math
from pathlib import Path

import pytest
import torch

from entropyctl.maths.batch import Rollout
from entropyctl.train.sampling import concat_rollouts, informative_groups, kept_rows, renumber_groups

REPO = Path(__file__).resolve().parent.parent


def test_groups_with_all_equal_rewards_are_dropped():
    rewards = torch.tensor([1.0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0])
    assert informative_groups(rewards, 4).tolist() == [True, False, False, True]
    # non-binary rewards: any difference counts (std > 0)
    assert informative_groups(torch.tensor([0.5, 0.5, 0.5, 0.25]), 2).tolist() == [False, True]


def test_groups_of_one_are_kept():
    assert informative_groups(torch.tensor([1.0, 0.0, 1.0]), 1).tolist() == [True, True, True]


def test_kept_rows_are_whole_groups_in_order_up_to_the_batch_size():
    rewards = torch.tensor([1.0, 0, 1, 1, 0, 1, 0, 0])  # groups of 2: kept 0, 2
    assert kept_rows(rewards, 2, 10).tolist() == [0, 1, 4, 5]
    assert kept_rows(rewards, 2, 1).tolist() == [0, 1]  # refill stops at the batch size
    assert kept_rows(torch.ones(4), 2, 5).numel() == 0


def rollout(n_groups, G, P, T, start=0):
    B = n_groups * G
    return Rollout(
        prompt_ids=torch.full((B, P), 7), prompt_mask=torch.ones(B, P, dtype=torch.long),
        completion_ids=torch.full((B, T), 5), completion_mask=torch.ones(B, T),
        texts=[f"t{start + i}" for i in range(B)],
        group_ids=torch.arange(n_groups).repeat_interleave(G), problems=list(range(start, start + B)),
    )


def test_concat_pads_and_keeps_groups_distinct():
    ro = concat_rollouts([rollout(2, 2, P=3, T=4), rollout(1, 2, P=5, T=2, start=4)], pad_id=0)
    assert ro.prompt_ids.shape == (6, 5) and ro.completion_ids.shape == (6, 4)
    assert ro.prompt_ids[0].tolist() == [0, 0, 7, 7, 7]  # left padding
    assert ro.prompt_mask[0].tolist() == [0, 0, 1, 1, 1]
    assert ro.completion_ids[4].tolist() == [5, 5, 0, 0]  # right padding, masked out
    assert ro.completion_mask[4].tolist() == [1, 1, 0, 0]
    assert ro.group_ids.tolist() == [0, 0, 1, 1, 2, 2]
    assert ro.texts[4] == "t4" and ro.problems[5] == 5
    sel = renumber_groups(ro.select(torch.tensor([2, 3, 4, 5])), 2)
    assert sel.group_ids.tolist() == [0, 0, 1, 1] and sel.texts == ["t2", "t3", "t4", "t5"]


@pytest.fixture(scope="module")
def smoke_state(smoke_runs_dir):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from entropyctl.config import register_schemas
    from entropyctl.train.loop import setup

    register_schemas()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose("config", overrides=[
            "experiment=smoke", "rollout.dynamic_sampling=true", "rollout.max_gen_batches=2",
            f"runs_dir={smoke_runs_dir}", f"cache_dir={REPO / 'runs' / '.cache'}", "threads=2"])
    cfg = OmegaConf.to_object(cfg)
    return setup(cfg, log=lambda *_: None), cfg


def test_a_round_with_dynamic_sampling_logs_pre_and_post_filter(smoke_state):
    from entropyctl.train.loop import run_round

    state, cfg = smoke_state
    row = run_round(0, state, cfg)
    prompts = cfg.rollout.prompts_per_round
    assert 1 <= row["sampling/gen_batches"] <= 2
    assert 0 < row["sampling/groups"] <= prompts
    informative = row["sampling/kept_frac"] * row["sampling/gen_batches"] * prompts
    if informative >= prompts:
        assert row["sampling/groups"] == prompts
    elif informative > 0:
        assert row["sampling/groups"] == pytest.approx(informative)
    else:  # nothing informative: trained on the first batch unfiltered
        assert row["sampling/groups"] == prompts and row["sampling/gen_batches"] == 2
    for key in ("entropy/seqmean_prefilter", "entropy/tokmean_prefilter", "entropy/seqmean"):
        assert math.isfinite(row[key]) and row[key] > 0


def test_max_gen_batches_below_one_is_refused(smoke_state):
    from dataclasses import replace

    from entropyctl.errors import BadInput

    _, cfg = smoke_state
    with pytest.raises(BadInput, match="rollout.max_gen_batches=0"):  # at composition, before any setup
        replace(cfg.rollout, max_gen_batches=0)
