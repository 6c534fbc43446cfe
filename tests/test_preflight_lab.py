"""The lab's prompts against the model's positions (train/preflight.py): the lab measures its
prompts when bound, so a completion budget that cannot fit is refused before any run."""

from __future__ import annotations

import pytest

from entropyctl.config import ModelConfig, TaskConfig, TrainConfig
from entropyctl.errors import BadInput
from entropyctl.lab.model import build_lab_model
from entropyctl.lab.task import AdditionTask
from entropyctl.lab.tokenizer import build_char_tokenizer
from entropyctl.train.preflight import check_prompt_fit


def _world(max_new_tokens: int):
    tok = build_char_tokenizer()
    task = AdditionTask(TaskConfig(max_new_tokens=max_new_tokens))
    task.bind(tok)
    model = build_lab_model(ModelConfig(), tok)
    return TrainConfig(task=TaskConfig(max_new_tokens=max_new_tokens)), task, model


def test_the_lab_prompts_are_measured_and_a_budget_past_the_positions_is_refused():
    cfg, task, model = _world(16)
    ctx = model.config.max_position_embeddings
    n = task.longest_prompt[0]
    assert n == len(task.val_problems[0].prompt) + 1  # one character a token, and beginning-of-sequence
    check_prompt_fit(cfg, task, model)  # the demo's budget fits
    cfg, task, model = _world(ctx - n)
    check_prompt_fit(cfg, task, model)  # exactly full
    cfg, task, model = _world(ctx - n + 1)
    with pytest.raises(BadInput, match=rf"the prompts are {n} tokens, which with task.max_new_tokens={ctx - n + 1} pass "
                                       rf"the model's {ctx} positions; give task.max_new_tokens<={ctx - n}$"):
        check_prompt_fit(cfg, task, model)
    cfg, task, model = _world(10 * ctx)
    with pytest.raises(BadInput, match=rf"task.max_new_tokens={10 * ctx} alone fills the model's {ctx} positions"):
        check_prompt_fit(cfg, task, model)
