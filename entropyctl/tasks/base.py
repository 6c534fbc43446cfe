"""The interface between the core and a task (spec §7.3 formats, §8.1 planning tokens).

A task owns its problems, its verifier and its notion of format; the core only calls these
methods. Problems are opaque to the core except for `.prompt` (the text the policy sees).
Whether a completion ended (end-of-sequence within `task.max_new_tokens`) reaches `score` and
`classify` as `finished`: each task decides what a truncated completion earns.

A task is a class built from a `TaskConfig` and registered by `task.kind` under the entry-point
group "entropyctl.tasks" (entropyctl/plugins.py). Optional: a `check(cfg)` static method
the CLI calls before any run directory exists, and `describe() -> str`, a line for the log.
A task that knows its prompts' token lengths once bound (the prompt file) sets
`prompt_tokens` (sorted) and `longest_prompt = (tokens, "file:line")`: the run is refused
before it starts when a prompt and `task.max_new_tokens` do not fit the model.

A task that changes over a run (the curriculum) also has `at_round(r)`, called before round r
(before its probes), and `observe(row)`, called with each finished round's metrics row (and,
on resume, with every row logged before the checkpoint, in order); both return metrics for
the row. `enter_round` and `observe_round` call them and are no-ops for other tasks.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    from torch import Tensor

UNKNOWN = "unknown"  # the format of a completion no declared format matches


@runtime_checkable
class Task(Protocol):
    format_names: list[str]  # the declared formats, in order (UNKNOWN is implicit)
    val_problems: Sequence  # fixed held-out problems, the same every round and every run

    def bind(self, tokenizer) -> None:
        """Called once with the policy's tokenizer before anything is sampled (chat templates)."""

    def sample_train(self, rng: random.Random, n: int) -> list:
        """n training problems drawn with `rng` (the run's prompt stream)."""

    def score(self, completion: str, problem, finished: bool) -> float:
        """The verifier's reward for one completion (text without end-of-sequence)."""

    def classify(self, completion: str, finished: bool) -> str:
        """The name of the format `completion` is written in, or UNKNOWN."""

    def plan_mask(self, completion_ids: "Tensor", completion_mask: "Tensor", tokenizer) -> "Tensor":
        """(B, T) float: 1 on planning tokens (HICRA, the planning/execution entropies)."""

    def demonstrations(self, rng: random.Random, n: int) -> tuple[list, list[str]]:
        """n problems with correct completions, without end-of-sequence (sft_refresh)."""


def enter_round(task, r: int) -> dict[str, float]:
    """Round r begins: the task's metrics for its row (a task without `at_round` has none)."""
    hook = getattr(task, "at_round", None)
    return hook(r) if hook is not None else {}


def observe_round(task, row: dict) -> dict[str, float]:
    """A finished round's row: what the task derives from it (without `observe`: nothing)."""
    hook = getattr(task, "observe", None)
    return hook(row) if hook is not None else {}
