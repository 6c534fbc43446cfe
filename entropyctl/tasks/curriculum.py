"""`task.kind=curriculum`, the plasticity probe (issue 10, spec §9): train on task A for
`switch_round` rounds, then on task B, and report how many rounds B takes to reach a reward
threshold against how far the policy had drifted from the base when it switched.

A and B are one task plugin (`task.curriculum.kind`) built twice, with the settings
`task.curriculum.a` and `.b` over the task's own (the lab: operand ranges, or which formats
earn reward). Which phase a round trains on is a pure function of the round number, so a
resumed run switches where an uninterrupted one does; the once-logged metrics are folded from
the run's rows (`observe`), which a resume replays from metrics.jsonl.

The probes' fixed sets (pass@k prompts, CKA prompts) are drawn from A's validation prompts
when a run (or a resume) starts, before any round picks a phase: the same sets either way.
"""

from __future__ import annotations

import math
import random
from typing import Sequence

from entropyctl.config_task import phase_config
from entropyctl.tasks import build, check

PHASE_KEY = "curriculum/phase"
KL_KEYS = ("kl/rev_exact", "kl/base_k3")  # the drift at the switch: exact when probes ran there


def phase_of(r: int, switch_round: int) -> int:
    """0 (task A) for rounds before the switch, 1 (task B) from it on."""
    return int(r >= switch_round)


def rounds_to_threshold(acc: dict[int, float], switch_round: int, threshold: float) -> int | None:
    """Rounds of training on B until its eval reward first reaches `threshold`: r - N + 1 for
    the first round r >= N whose eval/acc >= threshold (eval/acc of round r is measured after
    round r's update, so 1 = after B's first round), None while it has not."""
    for r in sorted(acc):
        if r >= switch_round and not math.isnan(acc[r]) and acc[r] >= threshold:
            return r - switch_round + 1
    return None


class CurriculumTask:
    def __init__(self, cfg):
        cur = cfg.curriculum
        self.switch_round, self.threshold = cur.switch_round, cur.threshold
        self.phases = [build(phase_config(cfg, "a")), build(phase_config(cfg, "b"))]
        names = [n for t in self.phases for n in t.format_names]
        self.format_names = list(dict.fromkeys(names))  # both phases' formats, in order
        self.phase = 0  # the task as built is A: the probe sets are A's (module docstring)
        self._acc_b: dict[int, float] = {}
        self._reached = False
        first = self.phases[0]
        if hasattr(first, "unfamiliar_prompts"):  # the sparsity probe's prompts: A's
            self.unfamiliar_prompts = first.unfamiliar_prompts

    @staticmethod
    def check(cfg) -> None:
        for phase in ("a", "b"):
            check(phase_config(cfg, phase))

    def describe(self) -> str:
        sizes = [len(t.val_problems) for t in self.phases]
        return (f"task curriculum: rounds 0-{self.switch_round - 1} on A, from round {self.switch_round} on B; "
                f"threshold {self.threshold} on B's eval/acc; {sizes[0]} / {sizes[1]} validation prompts")

    @property
    def current(self):
        return self.phases[self.phase]

    @property
    def val_problems(self) -> Sequence:
        return self.current.val_problems

    def at_round(self, r: int) -> dict[str, float]:
        """Round r begins: train, evaluate and score on its phase's task."""
        self.phase = phase_of(r, self.switch_round)
        return {PHASE_KEY: float(self.phase)}

    def observe(self, row: dict) -> dict[str, float]:
        """The curriculum's metrics derived from a finished round's row (its eval, its KL)."""
        r, out = row["round"], {}
        acc = row.get("eval/acc")
        if acc is not None:
            out[f"curriculum/eval_acc_{'ab'[phase_of(r, self.switch_round)]}"] = acc
        if r == self.switch_round:
            for key in KL_KEYS:
                if row.get(key) is not None:
                    out["curriculum/kl_at_switch"] = row[key]
                    out["curriculum/kl_at_switch_exact"] = float(key == "kl/rev_exact")
                    break
        if acc is not None and r >= self.switch_round and not self._reached:
            self._acc_b[r] = acc
            n = rounds_to_threshold(self._acc_b, self.switch_round, self.threshold)
            if n is not None:
                self._reached = True
                out["curriculum/rounds_to_threshold"] = float(n)
        return out

    def bind(self, tokenizer) -> None:
        for t in self.phases:
            t.bind(tokenizer)
        # Both phases' prompt lengths, for the prompt-fit check: B's prompts are sampled later.
        measured = [t for t in self.phases if getattr(t, "longest_prompt", None)]
        if measured:
            self.prompt_tokens = sorted(n for t in measured for n in t.prompt_tokens)
            self.longest_prompt = max((t.longest_prompt for t in measured), key=lambda x: x[0])

    def sample_train(self, rng: random.Random, n: int) -> list:
        return self.current.sample_train(rng, n)

    def score(self, completion: str, problem, finished: bool = True) -> float:
        return self.current.score(completion, problem, finished)

    def classify(self, completion: str, finished: bool = True) -> str:
        return self.current.classify(completion, finished)

    def plan_mask(self, completion_ids, completion_mask, tokenizer):
        return self.current.plan_mask(completion_ids, completion_mask, tokenizer)

    def demonstrations(self, rng: random.Random, n: int) -> tuple[list, list[str]]:
        return self.current.demonstrations(rng, n)
