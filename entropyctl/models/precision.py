"""Mixed precision (`model.dtype`): the policy keeps float32 weights and AdamW state, its passes
run under autocast to the run's dtype, and with float16 the loss is scaled before the backward
pass so that small gradients survive it.

Why the scaling: float16 holds nothing below 6e-8 and loses precision below 6e-5, and an RL
loss's per-token gradients (an advantage over tens of thousands of tokens) live down there.
Measured on the test model: a loss of 1e-3 of the usual size left 36 % of the gradient entries
exactly 0 in float16 (relative error 0.68); at 1e-5 every entry was 0. Scaled by 2^16 they
matched float32 to 3e-4 and 7e-4 (tests/test_precision.py). bfloat16 has float32's range and
needs no scaling; float32 none of this."""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from entropyctl.errors import Divergence

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# A loss scale that has halved down to this while gradients still overflow: they are not
# finite in float32 either (a real divergence, not float16's range).
MIN_SCALE = 1.0


def compute_precision(dtype: str, device: torch.device):
    """The context a trained policy's passes run in: autocast to `dtype` over its float32
    weights (mixed precision, as verl's FSDP actor), nothing for float32. The weights stay
    float32 because AdamW's steps at RL learning rates are below bfloat16's resolution: at
    lr 1e-6, three steps on a bfloat16 copy of the test model moved 2 % of its weights."""
    if dtype == "float32":
        return contextlib.nullcontext()
    # No cast cache: the context spans a whole round, and cached bfloat16 copies of the weights
    # would outlive the optimiser's steps (every minibatch and the eval scored the round's first
    # weights: the lab's reward fell from 0.30 to 0.05 in one round).
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype], cache_enabled=False)


def grad_scaler(dtype: str, device: torch.device) -> torch.amp.GradScaler | None:
    """The loss scaler a run in `dtype` needs: float16's, None for the others."""
    return torch.amp.GradScaler(device.type) if dtype == "float16" else None


def backward(loss: Tensor, scaler: torch.amp.GradScaler | None) -> None:
    (loss if scaler is None else scaler.scale(loss)).backward()


def clip_and_step(model, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
                  grad_clip: float) -> Tensor | None:
    """Clip the gradients to norm `grad_clip` and take the optimiser step. Returns the norm before
    clipping, or None when float16's loss scale overflowed: the step is skipped and the scale
    halved, as GradScaler does. A non-finite gradient otherwise is a Divergence."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    finite = bool(torch.isfinite(norm))
    if not finite and (scaler is None or scaler.get_scale() <= MIN_SCALE):
        raise Divergence(f"non-finite gradient norm ({norm.item()})")
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)  # skips the step when unscale_ found an inf or nan
        scaler.update()
    return norm if finite else None
