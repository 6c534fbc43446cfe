"""The selection scope of Clip-Cov / KL-Cov / forking-token masks through the real update
step (entropyctl/train/update.py) on a tiny Llama: micro-batches (gradient accumulation) and the
micro_batch | minibatch | round scopes pick the same tokens when they cover the same rows,
and different ones when they do not."""

import copy
import random

import pytest
import torch

from entropyctl.maths.advantage import compute_advantage
from entropyctl.config import OptimConfig, TaskConfig
from entropyctl.interventions import build
from entropyctl.lab.task import AdditionTask
from entropyctl.train.rescore import rescore
from entropyctl.train.rollout import sample
from entropyctl.models.scoring import ForwardBudget
from tests.helpers import tiny_lab_model
from entropyctl.train.update import RoundBatch, UpdateSettings, update

G = 4
BUDGET = ForwardBudget(None, 512)


@pytest.fixture(scope="module")
def lab():
    tok, model = tiny_lab_model(layers=1)
    task = AdditionTask(TaskConfig())
    problems = task.sample_train(random.Random(0), 4)
    ro = sample(model, tok, problems, G, 8, 1.0, torch.Generator().manual_seed(0))
    rewards = torch.tensor([1.0, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 1, 0])
    scored = rescore(model, model, ro, 1.0, BUDGET)
    return model, ro, scored, rewards, compute_advantage(rewards, G, "grpo", 1e-6)


def flat(model):
    return torch.cat([p.detach().flatten().clone() for p in model.parameters()])


def run(lab, selection, **optim):
    """(weight change, stats) of one update with plain SGD at lr 1: the change is -gradient
    (Adam's first step is ~lr * sign(g) and would hide differences in magnitude)."""
    model, ro, scored, rewards, adv = lab
    model = copy.deepcopy(model)
    cfg = OptimConfig(**{"minibatches": 1, "grad_clip": 1e9, **optim})
    before = flat(model)
    torch.manual_seed(1)
    stats = update(model, torch.optim.SGD(model.parameters(), lr=1.0), RoundBatch(ro, scored, adv, rewards),
                   build(selection), UpdateSettings(cfg, 1.0, torch.Generator().manual_seed(0), BUDGET))
    return flat(model) - before, stats


def close(a, b):
    return torch.allclose(a[0], b[0], atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("scope", ["micro_batch", "minibatch", "round"])
def test_micro_batched_updates_run_in_every_scope(lab, scope):
    w, stats = run(lab, {"kl_cov": {"frac": 0.1, "scope": scope},
                         "forking_tokens": {"frac": 0.5, "scope": scope}}, minibatches=2, micro_batches=2)
    assert torch.isfinite(w).all()
    assert stats["kl_cov/frac_penalised"] > 0 and stats["forking/frac_selected"] > 0


def test_one_call_per_round_makes_the_three_scopes_agree(lab):
    # one minibatch, one loss call, on-policy: the round's rescoring pass and the call's forward
    # see the same policy, so every scope detaches the same Clip-Cov candidates (frac 1 = all)
    ws = [run(lab, {"clip_cov": {"frac": 1.0, "cov_low": 0.05, "scope": s}}) for s in
          ("micro_batch", "minibatch", "round")]
    assert ws[0][1]["clip_cov/frac_detached"] > 0
    assert close(ws[0], ws[1]) and close(ws[0], ws[2])
    plain = run(lab, {"grpo": None})
    assert not close(ws[0], plain)  # and detaching changed the step


def test_minibatch_scope_over_micro_batches_equals_one_call(lab):
    # Clip-Cov detaching n_clip = 1 token: seeded picks, seq-mean-token-sum and equal rows per
    # call, so accumulating two calls equals one call when the pick is made over the minibatch
    # (and its rows are handed back to the right call) ...
    cc = {"frac": 1e-9, "cov_low": 0.0}
    one = run(lab, {"clip_cov": cc}, agg_mode="seq-mean-token-sum")
    two = run(lab, {"clip_cov": {**cc, "scope": "minibatch"}}, agg_mode="seq-mean-token-sum", micro_batches=2)
    assert close(one, two)
    # one token in all: 1/N for one call, (1/(N/2) + 0) / 2 over two calls
    assert two[1]["clip_cov/frac_detached"] == pytest.approx(one[1]["clip_cov/frac_detached"])
    # ... while per-call selection (the reference) detaches one token in each call
    per_call = run(lab, {"clip_cov": cc}, agg_mode="seq-mean-token-sum", micro_batches=2)
    assert not close(one, per_call)
    assert per_call[1]["clip_cov/frac_detached"] > two[1]["clip_cov/frac_detached"]
