"""The `addition` task: fixed-width additions answered in one of several formats.

A prompt is `07+12`; a completion is a format prefix, the sum and end-of-sequence
(`=19`, ` => answer 19`, ` #### 19`). The pretraining corpus mixes formats in configured
shares, and each format is correct in its own share of the corpus (wrong answers are the sum
off by a configured offset). Reward is 1 for an exact known format with the correct integer,
else 0. Formats, shares and error rates are config (`conf/task/*.yaml`), so other mixtures
need no code.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from entropyctl.config import TaskConfig
from entropyctl.errors import BadInput
from entropyctl.tasks.base import UNKNOWN

if TYPE_CHECKING:
    from torch import Tensor



@dataclass(frozen=True)
class Problem:
    prompt: str
    answer: int


class AdditionTask:
    def __init__(self, cfg: TaskConfig):
        if not cfg.formats:
            raise BadInput("task.formats is empty: give at least one answer format")
        total = sum(f.share for f in cfg.formats)
        if total <= 0 or any(f.share < 0 or not 0 <= f.correct <= 1 for f in cfg.formats):
            raise BadInput("task.formats: shares must be >= 0 (sum > 0) and correct in [0, 1]")
        prefixes = [f.prefix for f in cfg.formats]
        for i, p in enumerate(prefixes):
            # The format must be readable back from the text: no prefix may start another.
            if any(j != i and q.startswith(p) for j, q in enumerate(prefixes)):
                raise BadInput(f"task.formats: prefix {p!r} is a prefix of another format's; make the prefixes distinct")
        self.cfg = cfg
        self.formats = list(cfg.formats)
        self.format_names = [f.name for f in cfg.formats]
        self.shares = [f.share / total for f in cfg.formats]
        self.n_values = 10**cfg.digits
        all_pairs = [(a, b) for a in range(self.n_values) for b in range(self.n_values)]
        val_rng = random.Random(cfg.val_seed)
        val = set(val_rng.sample(range(len(all_pairs)), min(cfg.n_val, len(all_pairs) // 2)))
        # The split is drawn over every pair, then cut to `operands`: a range's validation
        # prompts are held out of training and of the pretraining corpus alike.
        lo, hi = cfg.operands if cfg.operands is not None else (0, self.n_values - 1)
        inside = [lo <= a <= hi and lo <= b <= hi for a, b in all_pairs]
        self.val_problems = [self._problem(*all_pairs[i]) for i in sorted(val) if inside[i]]
        self._train_pairs = [p for i, p in enumerate(all_pairs) if i not in val and inside[i]]
        if not self.val_problems or not self._train_pairs:
            raise BadInput(f"task.operands={list(cfg.operands)} leaves no training or no validation prompt; "
                           "give a wider range")
        paid = cfg.reward_formats
        self._paid = [f for f in self.formats if paid is None or f.name in paid]

    def _problem(self, a: int, b: int) -> Problem:
        d = self.cfg.digits
        return Problem(f"{a:0{d}d}+{b:0{d}d}", a + b)

    def bind(self, tokenizer) -> None:
        """Prompts are plain text for the lab's own tokenizer: nothing to render. They are all
        as long (fixed-width operands); their length lets preflight check task.max_new_tokens."""
        bos = int(tokenizer.bos_token_id is not None)
        n = len(tokenizer(self.val_problems[0].prompt, add_special_tokens=False)["input_ids"]) + bos
        self.prompt_tokens = [n]
        self.longest_prompt = (n, "every addition prompt")

    def sample_train(self, rng: random.Random, n: int) -> list[Problem]:
        """n training problems, drawn with replacement from the non-validation pairs."""
        return [self._problem(*rng.choice(self._train_pairs)) for _ in range(n)]

    def corpus_completion(self, rng: random.Random, problem: Problem) -> str:
        """One pretraining completion (without end-of-sequence) for `problem`."""
        fmt = rng.choices(self.formats, weights=self.shares)[0]
        value = problem.answer
        if rng.random() >= fmt.correct:
            candidates = [value + o for o in self.cfg.error_offsets if value + o >= 0]
            value = rng.choice(candidates)
        return f"{fmt.prefix}{value}"

    def demonstrations(self, rng: random.Random, n: int) -> tuple[list[Problem], list[str]]:
        """n training problems with correct completions (without end-of-sequence), the
        formats taken in turn so every format of the corpus appears in equal shares."""
        problems = self.sample_train(rng, n)
        comps = [f"{self.formats[i % len(self.formats)].prefix}{p.answer}" for i, p in enumerate(problems)]
        return problems, comps

    def unfamiliar_prompts(self, rng: random.Random, n: int) -> list[str]:
        """n prompts the model never saw in pretraining, for the sparsity probe (issue 10):
        alternately out-of-range operands (one digit wider than the corpus) and the
        characters of a corpus prompt shuffled so that '+' leaves its place (a shuffle that
        only swapped digits would be another corpus prompt)."""
        d, out = self.cfg.digits, []
        while len(out) < n:
            if len(out) % 2 == 0:
                a, b = (rng.randrange(10**d, 10 ** (d + 1)) for _ in range(2))
                out.append(f"{a}+{b}")
            else:
                chars = list(self._problem(*rng.choice(self._train_pairs)).prompt)
                while chars[d] == "+":
                    rng.shuffle(chars)
                out.append("".join(chars))
        return out

    def plan_mask(self, completion_ids: Tensor, completion_mask: Tensor, tokenizer) -> Tensor:
        """(B, T) float: the planning tokens of each completion (HICRA, spec §8.3).

        In this task the strategy is chosen by the answer-format prefix: planning tokens are
        the leading completion tokens that agree with a format's prefix tokens (the longest
        agreement over formats), i.e. the whole prefix of a completion written in a known
        format, or the part of a prefix a malformed one started. Digits and
        end-of-sequence are execution tokens."""
        import torch

        B, T = completion_ids.shape
        n_plan = torch.zeros(B, dtype=torch.long)
        for f in self.formats:
            ids = tokenizer(f.prefix, add_special_tokens=False)["input_ids"][:T]
            if not ids:
                continue
            agree = completion_ids[:, : len(ids)] == torch.tensor(ids, dtype=completion_ids.dtype)
            n_plan = torch.maximum(n_plan, agree.long().cumprod(1).sum(1))
        plan = torch.arange(T)[None, :] < n_plan[:, None]
        return plan.to(completion_mask.dtype) * completion_mask

    def classify(self, completion: str, finished: bool = True) -> str:
        """Name of the format `completion` is written in, or 'unknown' (so is every
        completion that did not end within max_new_tokens)."""
        if not finished:
            return UNKNOWN
        for f in self.formats:
            if completion.startswith(f.prefix) and completion[len(f.prefix):].isdigit():
                return f.name
        return UNKNOWN

    def score(self, completion: str, problem: Problem, finished: bool = True) -> float:
        """1.0 for `<known prefix><correct integer>` exactly, ended within max_new_tokens,
        else 0.0. Only the formats of `task.reward_formats` earn it (all when unset)."""
        if not finished:
            return 0.0
        for f in self._paid:
            if completion == f"{f.prefix}{problem.answer}":
                return 1.0
        return 0.0

    def corpus_accuracy(self) -> float:
        """Accuracy of a model that samples exactly the corpus distribution."""
        return sum(s * f.correct for s, f in zip(self.shares, self.formats))

    def corpus_format_entropy(self) -> float:
        return -sum(s * math.log(s) for s in self.shares if s > 0)
