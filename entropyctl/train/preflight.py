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
    longest, ctx, T = getattr(task, "longest_prompt", None), context_length(model.config), cfg.task.max_new_tokens
    if ctx is None:
        return
    if T >= ctx:  # whatever the prompts, and for a task that does not measure them
        raise BadInput(f"task.max_new_tokens={T} alone fills the model's {ctx} positions; lower it")
    if longest is None:
        return
    n, where = longest
    if n + T <= ctx:
        return
    if task.prompt_tokens[0] == n:  # every prompt this long (the lab's): none can be left out
        raise BadInput(f"the prompts are {n} tokens, which with task.max_new_tokens={T} pass the model's {ctx} "
                       f"positions; give task.max_new_tokens<={ctx - n}")
    over = sum(1 for x in task.prompt_tokens if x > ctx - T)
    raise BadInput(f"the longest prompt ({where}) is {n} tokens, which with task.max_new_tokens={T} passes "
                   f"the model's {ctx} positions; leave the {over} such prompt(s) out with "
                   f"task.max_prompt_tokens={ctx - T}, or lower task.max_new_tokens")
