"""What setup checks once the task (and then the model) is built, before any run directory
exists: what the config alone cannot say (how many validation prompts a file gives, how long
its prompts are in this tokenizer). Each failure is one BadInput line."""

from __future__ import annotations

from entropyctl.config import CKA_MIN_EXAMPLES, TrainConfig, probe_prompts_error
from entropyctl.errors import BadInput
from entropyctl.models.loading import context_length
from entropyctl.tasks import Task


def check_probe_prompts(cfg: TrainConfig, task: Task) -> None:
    """The probes' CKA runs on the task's validation prompts and needs 4 of them; the config
    checks what it can say alone, this what the task holds (task.max_prompt_tokens may drop some)."""
    if cfg.probe.every > 0 and len(task.val_problems) < CKA_MIN_EXAMPLES:
        raise probe_prompts_error(len(task.val_problems))


def check_prompt_fit(cfg: TrainConfig, task: Task, model) -> None:
    """Every prompt with task.max_new_tokens must fit the model's positions: vLLM would fail
    the round that drew a longer one, and a torch rollout would run past what the model knows."""
    longest, ctx = getattr(task, "longest_prompt", None), context_length(model.config)
    if longest is None or ctx is None:
        return
    (n, where), T = longest, cfg.task.max_new_tokens
    if n + T <= ctx:
        return
    if T >= ctx:
        raise BadInput(f"task.max_new_tokens={T} alone fills the model's {ctx} positions; lower it")
    over = sum(1 for x in task.prompt_tokens if x > ctx - T)
    raise BadInput(f"the longest prompt ({where}) is {n} tokens, which with task.max_new_tokens={T} passes "
                   f"the model's {ctx} positions; leave the {over} such prompt(s) out with "
                   f"task.max_prompt_tokens={ctx - T}, or lower task.max_new_tokens")
