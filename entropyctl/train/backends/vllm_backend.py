"""`rollout=vllm`: an in-process vLLM engine samples the rollouts (docs/vllm.md).

The engine starts from the run's checkpoint directory and runs in this process (engine
multiprocessing off), so the trainer hands it weights as tensors: after every update
`push_weights` reloads the torch policy's state dict in checkpoint format through vLLM's
in-place `reload_weights` (which re-runs each layer's weight processing, e.g. the CPU
build's packed GEMM weights) and resets the prefix cache. A bare `load_weights` or a reload
from disk does not agree on the CPU build; the conformance suite (tests/backends/) checks
that this push does, to float32 rounding.

Log-probs are vLLM's *processed* ones (`logprobs_mode=processed_logprobs`: temperature
applied), the distribution the token was drawn from (spec §14); the default raw ones would
ignore the temperature. vLLM never gives entropy: the torch rescoring does.
"""

from __future__ import annotations

import os

import torch

from entropyctl.errors import BadInput
from entropyctl.models.loading import encode_prompts, stop_ids
from entropyctl.train.backends.base import RawRollout


def _head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


class VllmBackend:
    name = "vllm"
    same_policy = False  # its own engine and kernels: the trainer rescores what it sampled

    def __init__(self, cfg, model_path, model, seed: int, dtype: str | None = None):
        # In-process engine: weights travel as tensors, no worker process to ship them to.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; the CPU build's default is 4
        from vllm import LLM
        from vllm.platforms import current_platform

        if current_platform.is_cpu():
            from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

            sizes = CPUAttentionBackend.get_supported_head_sizes()
            hd = _head_dim(model.config)
            if hd not in sizes:
                raise BadInput(f"rollout=vllm: vLLM's CPU attention does not take this model's head size {hd}; "
                               f"use a model whose head size is one of {', '.join(map(str, sizes))} (for the lab: "
                               "experiment=lab_vllm), or rollout=torch")
        if cfg.sleep and not current_platform.is_sleep_mode_available():
            raise BadInput(f"rollout.sleep=true needs vLLM's sleep mode, which this build ({current_platform.device_type}) "
                           "does not have; give rollout.sleep=false")
        dtype = dtype or str(next(model.parameters()).dtype).removeprefix("torch.")
        self.cfg, self.sleep, self.asleep = cfg, cfg.sleep, False
        self.llm = LLM(model=str(model_path), dtype=dtype, seed=seed, skip_tokenizer_init=True,
                       enforce_eager=True, logprobs_mode="processed_logprobs",
                       gpu_memory_utilization=cfg.gpu_memory_utilization, enable_sleep_mode=cfg.sleep)

    def _wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    def generate(self, model, tokenizer, prompts: list[str], n: int, max_new_tokens: int,
                 temperature: float, generator: torch.Generator, greedy: bool = False) -> RawRollout:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        self._wake()
        prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts)
        pad = tokenizer.pad_token_id
        # One draw from the run's sampling stream seeds the engine: reproducible, and distinct per call.
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        params = SamplingParams(n=n, temperature=0.0 if greedy else temperature, top_p=1.0,
                                max_tokens=max_new_tokens, seed=seed, logprobs=0,
                                stop_token_ids=stop_ids(model, tokenizer),
                                detokenize=False)
        requests = [TokensPrompt(prompt_token_ids=row[m.bool()].tolist()) for row, m in zip(prompt_ids, prompt_mask)]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        samples = [sorted(o.outputs, key=lambda c: c.index) for o in outputs]
        rows = [c for group in samples for c in group]
        T = max(1, max(len(c.token_ids) for c in rows))
        ids = torch.full((len(rows), T), pad, dtype=torch.long)
        logp = torch.zeros(len(rows), T)
        for i, c in enumerate(rows):
            toks = list(c.token_ids)
            ids[i, :len(toks)] = torch.tensor(toks, dtype=torch.long)
            if c.logprobs is not None:
                logp[i, :len(toks)] = torch.tensor([d[t].logprob for d, t in zip(c.logprobs, toks)])
        if self.sleep:  # free the engine's memory for the update; woken before it samples again
            self.llm.sleep(level=1)
            self.asleep = True
        rep = torch.arange(len(prompts)).repeat_interleave(n)
        # Greedy (validation) log-probs are not at `temperature`: none rather than wrong ones.
        return RawRollout(prompt_ids[rep], prompt_mask[rep], ids, None if greedy else logp)

    @torch.no_grad()
    def push_weights(self, model) -> None:
        self._wake()
        weights = [(k, v.detach()) for k, v in model.state_dict().items()]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        self.llm = None
