"""The task group's schemas (conf/task/): answer formats, the task itself and the curriculum
that switches a task's settings at a round. Split from config.py for length; config.py
re-exports every name here, so `from entropyctl.config import TaskConfig` stays the way in.
Types and the only defaults live here, as in config.py."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, Dict, List, Optional

from entropyctl.errors import BadInput
from entropyctl.limits import TASK_VERIFIERS, at_least


def home(path: Optional[str]) -> Optional[str]:
    """A path setting with a leading ~ expanded: Hydra takes `model.path="~/ckpt"` only quoted,
    and the shell expands no ~ after `model.path=`."""
    return os.path.expanduser(path) if isinstance(path, str) and path.startswith("~") else path


@dataclass
class FormatConfig:
    name: str = "equals"
    # Lab (task.kind=addition): the corpus writes `<prompt><prefix><answer>`.
    prefix: str = "="  # text between the prompt and the answer digits
    share: float = 1.0  # share of the pretraining corpus written in this format
    correct: float = 1.0  # share of this format's corpus answers that are correct
    # Free text (task.kind=jsonl): a regular expression searched in the completion; the
    # first declared format whose pattern matches names the completion's format.
    pattern: Optional[str] = None

    def __post_init__(self) -> None:
        if not self.name:
            raise BadInput("task.formats: a format has an empty name; give each format a name")
        if not (self.share >= 0 and math.isfinite(self.share)):
            raise BadInput(f"task.formats {self.name}: share={self.share} must be >= 0; give e.g. share=0.5")
        if not 0 <= self.correct <= 1:
            raise BadInput(f"task.formats {self.name}: correct={self.correct} must be in [0, 1]; give e.g. "
                           "correct=0.5")


def _lab_formats() -> List[FormatConfig]:
    # Issue 2: the common format is the least accurate, so RL has a reason to move off it.
    return [
        FormatConfig("equals", "=", 0.55, 0.35),
        FormatConfig("arrow", " => answer ", 0.30, 0.50),
        FormatConfig("hash", " #### ", 0.15, 0.75),
    ]


@dataclass
class CurriculumConfig:
    """task.kind=curriculum, the plasticity probe (issue 10; docs/collapse-or-convergence.md): the
    task `kind` with the settings `a` for rounds < switch_round, then with the settings `b`.
    `a` and `b` override task keys (the task's own values apply where they are silent)."""

    kind: str = "addition"  # the task plugin both phases are built from
    switch_round: int = 50  # N: rounds 0..N-1 train on A, round N is B's first (half the default rounds)
    a: Dict[str, Any] = field(default_factory=dict)
    b: Dict[str, Any] = field(default_factory=dict)
    # eval/acc on B that counts as learned: curriculum/rounds_to_threshold is logged when first reached.
    threshold: float = 0.5

    def __post_init__(self) -> None:
        at_least("task.curriculum.switch_round", self.switch_round, 1)
        if not 0 < self.threshold <= 1:
            raise BadInput(f"task.curriculum.threshold={self.threshold} is out of range; give a reward in (0, 1], "
                           "e.g. task.curriculum.threshold=0.5")
        if not self.kind or self.kind == "curriculum":
            raise BadInput(f"task.curriculum.kind={self.kind or '(empty)'} is not a task to switch; give a task "
                           "plugin, e.g. task.curriculum.kind=addition")


def phase_config(task: "TaskConfig", phase: str) -> "TaskConfig":
    """The task settings of curriculum phase `phase` ("a" or "b"): `task` with that phase's
    overrides, as the task `task.curriculum.kind`, checked like any task config."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    overrides = dict(getattr(task.curriculum, phase))
    # The completion budget is the run's (rollout, eval and the prompt-fit check read task.max_new_tokens).
    settable = {f.name for f in fields(TaskConfig)} - {"name", "kind", "curriculum", "max_new_tokens"}
    for key in overrides:
        if key not in settable:
            raise BadInput(f"task.curriculum.{phase}.{key} is not a task setting a phase can change; give task "
                           "keys such as operands, reward_formats or formats")
    try:
        own = replace(task, kind=task.curriculum.kind, curriculum=CurriculumConfig())
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(own), overrides))
    except OmegaConfBaseException as e:
        raise BadInput(f"task.curriculum.{phase}: {str(e).splitlines()[0]}; fix the phase's settings") from None
    except BadInput as e:  # the phase's own check, named as the phase's
        raise BadInput(f"task.curriculum.{phase}: {e}") from None


@dataclass
class TaskConfig:
    name: str = "addition"  # the label in run ids, run.json and reports
    kind: str = "addition"  # the plugin that builds it (entry point in "entropyctl.tasks")
    max_new_tokens: int = 16  # completion token budget; an unfinished completion is truncated
    formats: List[FormatConfig] = field(default_factory=_lab_formats)

    # --- the lab (kind=addition): fixed-width additions, a synthetic pretraining corpus
    digits: int = 2  # operands are fixed-width, zero-padded
    # Wrong corpus answers are the sum plus one of these (never below 0).
    error_offsets: List[int] = field(default_factory=lambda: [-10, -2, -1, 1, 2, 10])
    n_val: int = 256  # fixed validation prompts, held out of training
    val_seed: int = 1234  # also splits a prompt file's validation rows off (kind=jsonl)
    # [lo, hi]: RL trains and validates on prompts with both operands in this range (the
    # pretraining corpus always covers every operand); null = every operand.
    operands: Optional[List[int]] = None
    # The formats whose correct answers earn reward (the others score 0); null = every format.
    reward_formats: Optional[List[str]] = None

    # --- a prompt file (kind=jsonl; docs/tasks.md): one problem per row
    path: Optional[str] = None  # .jsonl, .json, .parquet or .csv (tasks/rows.py)
    prompt_key: str = "question"
    answer_key: str = "answer"
    demo_key: Optional[str] = None  # a worked solution for sft_refresh; default: the answer field
    val_path: Optional[str] = None  # held-out rows; without it `val_size` rows of `path` are held out
    val_size: int = 64
    system_prompt: Optional[str] = None
    # Render prompts with the tokenizer's chat template; null = when the tokenizer has one.
    chat_template: Optional[bool] = None
    verifier: str = "number"  # one of TASK_VERIFIERS
    answer_pattern: Optional[str] = None  # verifier=regex: group 1 (or the match) is the answer
    # Reward of a wrong answer written in a declared format (a correct one earns 1).
    format_reward: float = 0.0
    # Strategic phrases (spec §8.1): tokens covered by one are planning tokens (HICRA and the
    # planning/execution entropies). Matched case-insensitively in the completion text.
    planning_phrases: List[str] = field(default_factory=list)
    max_bad_rows: int = 0  # rows missing a key, with an empty prompt or an unreadable answer
    # Prompts longer than this many tokens (chat template included) are left out when the
    # task is bound to the tokenizer (verl's filter_overlong_prompts); null = keep them all,
    # and refuse the run if one does not fit the model's positions with max_new_tokens.
    max_prompt_tokens: Optional[int] = None

    # --- kind=curriculum: another task's settings switched at a round (the plasticity probe)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)

    def __post_init__(self) -> None:
        self.path, self.val_path = home(self.path), home(self.val_path)
        if not self.kind:
            raise BadInput("task.kind is empty; give the task plugin, e.g. task.kind=addition or task=jsonl")
        if self.max_new_tokens < 1:
            raise BadInput(f"task.max_new_tokens={self.max_new_tokens} is out of range; give task.max_new_tokens>=1")
        if self.verifier not in TASK_VERIFIERS:
            raise BadInput(f"task.verifier={self.verifier} is unknown; give one of {', '.join(TASK_VERIFIERS)}")
        if not 0.0 <= self.format_reward < 1.0:
            raise BadInput(f"task.format_reward={self.format_reward} is out of range; give 0 <= task.format_reward < 1")
        if self.max_prompt_tokens is not None and self.max_prompt_tokens < 1:
            raise BadInput(f"task.max_prompt_tokens={self.max_prompt_tokens} is out of range; give "
                           "task.max_prompt_tokens>=1, or null to keep every prompt")
        for key in ("val_size", "max_bad_rows", "n_val"):
            if getattr(self, key) < 0:
                raise BadInput(f"task.{key}={getattr(self, key)} is negative; give task.{key}>=0")
        if self.verifier == "regex" and not self.answer_pattern:
            raise BadInput("task.verifier=regex needs task.answer_pattern (a regular expression; group 1 is the answer)")
        for what, pat in [("task.answer_pattern", self.answer_pattern),
                          *((f"task.formats.{f.name}.pattern", f.pattern) for f in self.formats)]:
            if pat is None:
                continue
            try:
                re.compile(pat)
            except re.error as e:
                raise BadInput(f"{what}={pat!r} is not a regular expression ({e}); fix or quote it") from None
        for key in ("prompt_key", "answer_key"):
            if self.kind == "jsonl" and not getattr(self, key):
                raise BadInput(f"task.{key} is empty; give the field name of the rows' {key.split('_')[0]}")
        if self.kind == "jsonl" and not self.path:
            raise BadInput("task=jsonl needs the prompt file: add task.path=/path/to/prompts.jsonl")
        if self.kind == "addition":
            # A prompt file's settings on the lab: task=jsonl was forgotten, and the lab would train
            file_keys = [k for k in ("path", "val_path", "system_prompt", "max_prompt_tokens") if getattr(self, k)]
            if file_keys:
                raise BadInput(f"task.{file_keys[0]} is set but the task is the lab (task.kind=addition), which "
                               "reads no prompt file; add task=jsonl to train on your prompts")
            for key in ("digits", "n_val"):
                at_least(f"task.{key}", getattr(self, key), 1)
            if not self.formats or not sum(f.share for f in self.formats) > 0:
                raise BadInput("task.formats has no format with share > 0; give at least one format a positive share")
            top, ops = 10**self.digits - 1, self.operands
            if ops is not None and not (len(ops) == 2 and 0 <= ops[0] <= ops[1] <= top):
                raise BadInput(f"task.operands={list(ops)} is not a range of {self.digits}-digit operands; give "
                               f"[lo, hi] with 0 <= lo <= hi <= {top}")
            names = [f.name for f in self.formats]
            paid = self.reward_formats
            if paid is not None and not (paid and set(paid) <= set(names)):
                raise BadInput(f"task.reward_formats={list(paid)} is not a list of declared formats; "
                               f"give some of {', '.join(names)}, or null for all")
        if self.kind == "curriculum" and phase_config(self, "a") == phase_config(self, "b"):
            raise BadInput("task.curriculum.a and task.curriculum.b give the same task; set in b what changes at "
                           "the switch, e.g. task.curriculum.b.reward_formats=[arrow]")
