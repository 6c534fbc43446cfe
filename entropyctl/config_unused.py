"""Settings a composed config holds but its run never reads: a lab architecture key beside a
checkpoint, a vLLM key with the torch sampler, a probe setting with the probes off. Each maps
to the reason, and `entropyctl train` refuses a command line that sets one (cli/checks.py):
the researcher meant something by it, and the run would silently do otherwise.

Only what the user typed is refused: the presets set some of these on purpose (experiment=smoke
shrinks the lab, and still composes with model=hf)."""

from __future__ import annotations

from dataclasses import fields

from entropyctl.config import TrainConfig
from entropyctl.config_task import TaskConfig

LAB_ARCHITECTURE = ("hidden", "layers", "heads", "ffn", "max_positions", "pretrain_steps", "pretrain_batch",
                    "pretrain_lr", "pretrain_warmup", "pretrain_seed")
# The task keys each built-in task reads besides those every task reads (name, kind,
# max_new_tokens, formats, val_seed); a plugin task is not second-guessed.
LAB_TASK = ("digits", "error_offsets", "n_val", "operands", "reward_formats")
FILE_TASK = ("path", "prompt_key", "answer_key", "demo_key", "val_path", "val_size", "system_prompt",
             "chat_template", "verifier", "answer_pattern", "format_reward", "planning_phrases",
             "max_bad_rows", "max_prompt_tokens")
PROBE_KEYS = tuple(f.name for f in fields(TrainConfig().probe) if f.name != "every")


def unused_settings(cfg: TrainConfig) -> dict[str, str]:
    """{dotted key: why the run does not read it, and what to do} for `cfg`."""
    out: dict[str, str] = {}
    if cfg.model.kind == "hf":
        why = "model=hf takes its architecture from the checkpoint (this key shapes the lab model); drop it"
        out.update({f"model.{k}": why for k in LAB_ARCHITECTURE})
    out.update({f"task.{k}": why for k, why in _task(cfg.task).items()})
    r = cfg.rollout
    if r.backend != "vllm":
        out.update({f"rollout.{k}": "it sets up the vLLM engine, and rollout=torch samples without one; drop it, or add rollout=vllm"
                    for k in ("gpu_memory_utilization", "sleep")})
        why = ("rollout=torch samples from the policy itself: its log-probs are the trainer's and every "
               "correction weight is 1; drop it, or add rollout=vllm")
        out.update({f"rollout.{k}": why for k in ("correction", "correction_threshold")})
    else:
        out["rollout.max_rows"] = "it chunks the torch sampler's decoding, and vLLM schedules its own batches; drop it"
        if r.correction == "none":
            out["rollout.correction_threshold"] = "rollout.correction=none applies no correction; drop it, or choose a correction (docs/vllm.md)"
    if not r.dynamic_sampling:
        out["rollout.max_gen_batches"] = "it bounds dynamic sampling's refills, which are off; drop it, or add rollout.dynamic_sampling=true"
    groups = r.prompts_per_round
    most, what = ((groups, "groups (rollout.prompts_per_round; optim.shuffle=groups keeps a group whole)")
                  if cfg.optim.shuffle == "groups" else
                  (groups * r.group_size, "completions (rollout.prompts_per_round x rollout.group_size)"))
    if cfg.optim.minibatches > most:  # the split makes one minibatch a row (a group) at most
        out["optim.minibatches"] = (f"a round has {most} {what}, so it takes {most} optimiser steps at most; "
                                    f"give optim.minibatches<={most}")
    if cfg.optim.micro_batch_tokens:
        out["optim.micro_batches"] = "optim.micro_batch_tokens sizes the loss calls instead; drop one of the two"
    if not cfg.tracking.wandb:
        out.update({f"tracking.{k}": "tracking.wandb is off; drop it, or add tracking.wandb=true"
                    for k in ("wandb_mode", "project", "entity")})
    if cfg.probe.every == 0:
        out.update({f"probe.{k}": "probe.every=0 turns the probes off; drop it, or give probe.every=N" for k in PROBE_KEYS})
    return out


def _task(t: TaskConfig) -> dict[str, str]:
    out: dict[str, str] = {}
    if t.kind != "curriculum":
        out.update({f"curriculum.{f.name}": f"task.kind={t.kind} has no phases; drop it, or add task=curriculum"
                    for f in fields(t.curriculum)})
    kind = t.curriculum.kind if t.kind == "curriculum" else t.kind  # what the phases are built as
    if kind == "addition":
        out.update({k: "the lab task reads no prompt file; drop it, or add task=jsonl" for k in FILE_TASK})
    elif kind == "jsonl":
        out.update({k: "it shapes the lab's synthetic additions, and task=jsonl reads your prompt file; drop it"
                    for k in LAB_TASK})
    return out


def override_key(override: str) -> str | None:
    """The dotted key a command-line override sets ('+a.b=1' -> 'a.b'), or None for a group
    choice ('model=hf'), a deletion or a hydra.* setting."""
    key, eq, _ = override.partition("=")
    key = key.lstrip("+")
    if not eq or key.startswith(("~", "hydra.")) or "." not in key:
        return None
    return key
