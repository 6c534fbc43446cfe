"""SFT refresh (round stage): every k rounds, NLL steps on correct demonstrations in all the
task's formats, on a tiny real Llama; nothing happens on the other rounds."""

import random

import pytest
import torch

from entropyctl.config import ModelConfig, OptimConfig, TaskConfig
from entropyctl.interventions import InterventionError, RoundContext, build
from entropyctl.interventions.sft_refresh import SftRefreshConfig, sft_batch, sft_due, sft_refresh
from entropyctl.lab.model import build_lab_model
from entropyctl.lab.task import AdditionTask
from entropyctl.lab.tokenizer import build_char_tokenizer
from entropyctl.train.update import make_optimizer


@pytest.fixture()
def lab():
    torch.manual_seed(0)
    tok = build_char_tokenizer()
    model = build_lab_model(ModelConfig(hidden=32, layers=1, heads=2, ffn=64), tok).eval()
    opt = make_optimizer(model, OptimConfig(lr=1e-2))
    return model, opt, tok, AdditionTask(TaskConfig())


def ctx(lab, r):
    model, opt, tok, task = lab
    return RoundContext(r, model, opt, tok, task, random.Random(r), 1.0)


def weights(model):
    return torch.cat([p.detach().flatten().clone() for p in model.parameters()])


def test_due_every_k_rounds():
    assert [r for r in range(12) if sft_due(r, 5)] == [4, 9]


def test_demonstrations_are_correct_and_cover_every_format_equally(lab):
    task = lab[3]
    problems, comps = task.demonstrations(random.Random(0), 30)
    assert all(task.score(c, p) == 1.0 for p, c in zip(problems, comps))
    counts = {name: sum(task.classify(c) == name for c in comps) for name in task.format_names}
    assert counts == {"equals": 10, "arrow": 10, "hash": 10}


def test_sft_batch_pads_like_the_sampler(lab):
    tok = lab[2]
    p_ids, p_mask, ids, mask = sft_batch(tok, ["01+02", "11+22"], ["=3", " #### 33"])
    assert p_mask.sum(1).tolist() == [6, 6]  # bos + 5 prompt characters
    assert mask.sum(1).tolist() == [3.0, 9.0]  # completion characters + end-of-sequence
    assert ids[0, 2].item() == tok.eos_token_id and ids[0, 3].item() == tok.pad_token_id


def test_no_step_off_schedule(lab):
    before = weights(lab[0])
    out = sft_refresh(ctx(lab, 0), SftRefreshConfig(every=2, steps=3, batch=8))
    assert out == {"sft_refresh/steps": 0.0}
    assert torch.equal(before, weights(lab[0]))


def test_steps_on_schedule_lower_the_demonstration_nll(lab):
    pipe = build({"sft_refresh": {"every": 2, "steps": 5, "batch": 32}})
    before = weights(lab[0])
    first = pipe.after_round(ctx(lab, 1))
    assert first["sft_refresh/steps"] == 5.0
    assert not torch.equal(before, weights(lab[0]))
    assert not lab[0].training  # handed back in eval mode
    later = [pipe.after_round(ctx(lab, r))["sft_refresh/nll"] for r in (3, 5, 7)]
    assert later[-1] < first["sft_refresh/nll"]


def test_bad_schedule_is_a_config_error():
    with pytest.raises(InterventionError, match="every"):
        build({"sft_refresh": {"every": 0}})
