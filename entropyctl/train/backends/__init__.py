"""Rollout backends behind one interface (base.Backend): `torch` (the trainer's KV-cache
sampler) and `vllm` (an in-process vLLM engine; optional extra). See docs/vllm.md."""

from __future__ import annotations

from entropyctl.train.backends.base import Backend, RawRollout

NAMES = ("torch", "vllm")

__all__ = ["Backend", "RawRollout", "NAMES", "make_backend"]


def make_backend(name: str, rollout_cfg=None, model_path=None, model=None, seed: int = 0,
                 dtype: str | None = None) -> Backend:
    """The backend `name`; vllm needs the run's rollout config, the checkpoint directory the
    engine starts from, the torch policy whose weights it then follows, and the precision it
    samples in (model.dtype; default: the policy's weights')."""
    if name == "torch":
        from entropyctl.train.backends.torch_backend import TorchBackend

        return TorchBackend(getattr(rollout_cfg, "max_rows", 0))
    if name == "vllm":
        from entropyctl.train.backends.vllm_backend import VllmBackend

        return VllmBackend(rollout_cfg, model_path, model, seed, dtype)
    raise ValueError(f"unknown rollout.backend {name!r}; choose one of {', '.join(NAMES)}")
