"""The lab's unfamiliar prompts for the sparsity probe: never a prompt of the corpus."""

from __future__ import annotations

import random

from entropyctl.config import TaskConfig
from entropyctl.lab.task import AdditionTask


def test_unfamiliar_prompts_are_wider_operands_or_shuffled_corpus_prompts():
    task = AdditionTask(TaskConfig())
    corpus = {p.prompt for p in task.val_problems} | {task._problem(a, b).prompt for a, b in task._train_pairs}
    got = task.unfamiliar_prompts(random.Random(0), 40)
    assert len(got) == 40 and not set(got) & corpus
    wide, shuffled = got[0::2], got[1::2]
    assert all(len(a) == 3 and len(b) == 3 for a, b in (p.split("+") for p in wide))
    # a shuffle keeps the characters of a 2-digit prompt (4 digits, one "+") but moves the "+"
    assert all(len(p) == 5 and p.count("+") == 1 and p.replace("+", "").isdigit() and p[2] != "+"
               for p in shuffled)
    assert got == task.unfamiliar_prompts(random.Random(0), 40)  # the same set every call
