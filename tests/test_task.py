"""The lab's addition task: formats, scoring, the corpus mixture, the held-out split."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from entropyctl.config import FormatConfig, TaskConfig
from entropyctl.lab.task import UNKNOWN, AdditionTask, Problem

TASK = AdditionTask(TaskConfig())
P = Problem("07+12", 19)


@pytest.mark.parametrize("text,fmt,reward,finished", [
    ("=19", "equals", 1.0, True),
    (" => answer 19", "arrow", 1.0, True),
    (" #### 19", "hash", 1.0, True),
    ("=20", "equals", 0.0, True),          # known format, wrong sum
    (" #### 19 ", UNKNOWN, 0.0, True),     # trailing text is not the format
    ("19", UNKNOWN, 0.0, True),
    ("=19", UNKNOWN, 0.0, False),          # did not end within max_new_tokens
    ("", UNKNOWN, 0.0, True),
])
def test_classify_and_score(text, fmt, reward, finished):
    assert TASK.classify(text, finished) == fmt
    assert TASK.score(text, P, finished) == reward


def test_prompts_are_fixed_width():
    assert AdditionTask(TaskConfig()).sample_train(random.Random(0), 50)[0].prompt.count("+") == 1
    assert {len(p.prompt) for p in TASK.sample_train(random.Random(0), 200)} == {5}


def test_corpus_matches_configured_shares_and_error_rates():
    rng = random.Random(0)
    problems = TASK.sample_train(rng, 20000)
    fmts, correct = Counter(), Counter()
    for p in problems:
        c = TASK.corpus_completion(rng, p)
        f = TASK.classify(c)
        fmts[f] += 1
        correct[f] += TASK.score(c, p)
    n = len(problems)
    for f, share, acc in (("equals", 0.55, 0.35), ("arrow", 0.30, 0.50), ("hash", 0.15, 0.75)):
        assert abs(fmts[f] / n - share) < 0.015
        assert abs(correct[f] / fmts[f] - acc) < 0.03
    assert abs(TASK.corpus_accuracy() - (0.55 * 0.35 + 0.3 * 0.5 + 0.15 * 0.75)) < 1e-12


def test_wrong_answers_are_off_by_configured_offsets():
    rng = random.Random(1)
    for _ in range(500):
        p = TASK.sample_train(rng, 1)[0]
        c = TASK.corpus_completion(rng, p)
        value = int(c.removeprefix(next(f.prefix for f in TASK.formats if c.startswith(f.prefix))))
        assert value - p.answer in {0, -10, -2, -1, 1, 2, 10}
        assert value >= 0


def test_validation_prompts_are_held_out_and_fixed():
    val = {p.prompt for p in TASK.val_problems}
    assert len(val) == 256
    train = {p.prompt for p in TASK.sample_train(random.Random(0), 5000)}
    assert not val & train
    assert [p.prompt for p in AdditionTask(TaskConfig()).val_problems] == [p.prompt for p in TASK.val_problems]


def test_ambiguous_formats_are_refused():
    cfg = TaskConfig(formats=[FormatConfig("a", "=", 0.5, 0.5), FormatConfig("b", "==", 0.5, 0.5)])
    with pytest.raises(ValueError, match="prefix"):
        AdditionTask(cfg)
