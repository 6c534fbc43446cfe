"""Probes (issue 10): how far the policy moved from the base, and how, measured on fixed probe
sets every `probe.every` rounds, at round 0 and at the last round. The maths is in
`entropyctl.maths.probes`; this module picks the inputs, runs the forward passes and names the
metrics (keys in the glossary's PROBES).

Every probe runs before the round's rollout, so it measures the policy that samples that round
(round 0 = the base model), like the rollout entropies. Probes draw from their own generators
seeded by (seed, round) and never call the update, so a run with probes logs the same training
numbers as one without.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor

from entropyctl.config import TrainConfig
from entropyctl.maths.batch import Rollout
from entropyctl.maths.probes import SPARSITY, exact_kl, linear_cka, pass_at_k_curve, powers_of_two
from entropyctl.models.loading import encode_prompts, positions
from entropyctl.models.scoring import completion_hidden, completion_logits, has_plain_head
from entropyctl.runstore.inputs import input_stamps
from entropyctl.train.reward import score
from entropyctl.train.rollout import sample

DEBIAS_BELOW = 512  # CKA examples under which the biased estimator is visibly inflated (spec §10.1)
MAX_ROWS = 512  # sampled rows per generate call: bounds memory on larger models
BASE_SEED = 20_251_201  # base-model samples do not depend on the run's seed: one curve per base


def is_probe_round(r: int, cfg: TrainConfig) -> bool:
    every = cfg.probe.every
    return every > 0 and (r % every == 0 or r == cfg.rounds - 1)


@torch.no_grad()
def last_token_hidden(model, tokenizer, prompts: list[str], budget_mb: float = 512.0) -> list[Tensor]:
    """Hidden state of each prompt's last token, per layer: [(n, d)] * (layers + 1), index 0 =
    embeddings, last = the final block after the final norm (the transformers convention).
    A pass returns every layer's states of every position: prompts go through in passes of
    at most `budget_mb` MiB of them (128 prompts x 300 tokens x 33 layers x 4096 is 20 GB in
    float32), through the decoder alone when it has one (no logits: another 23 GB for a
    152k vocabulary)."""
    dev = model.get_input_embeddings().weight.device
    ids, mask = (t.to(dev) for t in encode_prompts(tokenizer, prompts))  # left padded: last column = last token
    net = model.get_decoder() if has_plain_head(model) else model
    cfg = model.config
    row_bytes = ids.shape[1] * (getattr(cfg, "num_hidden_layers", 0) + 1) * getattr(cfg, "hidden_size", 0) * 4
    n = max(1, int(budget_mb * 2**20) // row_bytes) if row_bytes else len(ids)
    parts = []
    for i in range(0, len(ids), n):
        out = net(input_ids=ids[i:i + n], attention_mask=mask[i:i + n], position_ids=positions(mask[i:i + n]),
                  output_hidden_states=True)
        parts.append([hs[:, -1].double().cpu() for hs in out.hidden_states])  # the base's may sit elsewhere
    return [torch.cat(layer) for layer in zip(*parts)]


def _sample_chunked(model, tokenizer, problems: list, n: int, cfg: TrainConfig, gen: torch.Generator) -> Rollout:
    per = max(1, MAX_ROWS // n)
    # Always the torch sampler: probes measure the trainer's own policy and the frozen base, and
    # a vLLM engine holds only the policy's weights.
    parts = [sample(model, tokenizer, problems[i:i + per], n, cfg.task.max_new_tokens, cfg.rollout.temperature,
                    gen, backend="torch") for i in range(0, len(problems), per)]
    if len(parts) == 1:
        return parts[0]
    return _concat(parts, tokenizer.pad_token_id)


def _concat(parts: list[Rollout], pad: int) -> Rollout:
    def cat(ts: list[Tensor], left: bool, value) -> Tensor:
        width = max(t.shape[1] for t in ts)
        padded = []
        for t in ts:
            fill = torch.full((t.shape[0], width - t.shape[1]), value, dtype=t.dtype)
            padded.append(torch.cat([fill, t] if left else [t, fill], dim=1))
        return torch.cat(padded)

    offsets = torch.cumsum(torch.tensor([0] + [int(p.group_ids.max()) + 1 for p in parts[:-1]]), 0)
    return Rollout(cat([p.prompt_ids for p in parts], True, pad), cat([p.prompt_mask for p in parts], True, 0),
                   cat([p.completion_ids for p in parts], False, pad),
                   cat([p.completion_mask for p in parts], False, 0.0),
                   [t for p in parts for t in p.texts], torch.cat([p.group_ids + o for p, o in zip(parts, offsets)]),
                   [q for p in parts for q in p.problems])


def pass_curve(model, tokenizer, task, problems: list, cfg: TrainConfig, gen: torch.Generator,
               prefix: str) -> tuple[dict[str, float], Rollout]:
    """`<prefix><k>` for k = 1, 2, 4 ... pass_k_max (unbiased, spec §6; correct = the verifier's
    full reward), and the rollout it was computed from."""
    n = cfg.probe.pass_k_max
    ro = _sample_chunked(model, tokenizer, problems, n, cfg, gen)
    rewards, _ = score(ro, task)
    correct = (rewards >= 1.0).view(len(problems), n).sum(1).tolist()
    curve = pass_at_k_curve([int(c) for c in correct], n, powers_of_two(n))
    return {f"{prefix}{k}": v for k, v in curve.items()}, ro


# Bytes a position of exact_kl holds: two float32 logit rows, then float64 log-probs, probs and
# their product (V of each).
KL_BYTES_PER_VOCAB = 40


@torch.no_grad()
def exact_kl_mean(p_model, q_model, ro: Rollout, temperature: float, logits_mb: float = 512.0,
                  chunk: int = 16) -> float:
    """Token-mean over the rollout's response tokens of the exact KL(p || q) per position. Rows
    in chunks of `chunk`; when their logits would pass `logits_mb` MiB (152k vocabulary x 1k
    tokens x 16 rows: ~100 GB in float64), the output heads are applied to chunks of positions
    within it. The two models may sit on different devices (model.base_device)."""
    total, count = 0.0, 0.0
    V = p_model.get_output_embeddings().weight.shape[0]
    n_pos = max(1, int(logits_mb * 2**20) // (KL_BYTES_PER_VOCAB * V))
    for i in range(0, ro.size, chunk):
        part = ro.select(torch.arange(i, min(i + chunk, ro.size)))
        args = (part.prompt_ids, part.prompt_mask, part.completion_ids, part.completion_mask)
        mask = part.completion_mask.double().cpu()
        if mask.numel() > n_pos:
            kl = _kl_by_positions(p_model, q_model, args, temperature, n_pos)
        else:
            kl = None
        if kl is None:  # fits (the lab), or logits that are not lm_head(hidden): the full logits
            zp = completion_logits(p_model, *args, temperature)
            zq = completion_logits(q_model, *args, temperature)
            kl = exact_kl(zp, zq.to(zp.device)).cpu()
        total += float((kl * mask).sum())
        count += float(mask.sum())
    return total / max(count, 1.0)


def _kl_by_positions(p_model, q_model, args, temperature: float, n_pos: int) -> Tensor | None:
    """(rows, T) exact KL, the heads applied to `n_pos` positions at a time; None when a model's
    logits are not lm_head(hidden)."""
    hp, hq = completion_hidden(p_model, *args), completion_hidden(q_model, *args)
    if hp is None or hq is None:
        return None
    rows, T = hp.shape[:2]
    hp, hq = hp.reshape(rows * T, -1), hq.reshape(rows * T, -1)
    head_p, head_q = p_model.get_output_embeddings(), q_model.get_output_embeddings()
    parts = []
    for s in range(0, rows * T, n_pos):
        zp = head_p(hp[s:s + n_pos]).float() / temperature
        zq = head_q(hq[s:s + n_pos]).float().to(zp.device) / temperature
        parts.append(exact_kl(zp, zq).cpu())
    return torch.cat(parts).view(rows, T)


def _first_samples(ro: Rollout, n_problems: int, n: int, keep: int) -> Rollout:
    idx = torch.arange(n_problems)[:, None] * n + torch.arange(keep)[None, :]
    return ro.select(idx.flatten())


def unfamiliar_prompts(task, cfg: TrainConfig, n: int) -> list[str] | None:
    """The task's unfamiliar prompts (`task.unfamiliar_prompts(rng, n)`), else the lines of
    `probe.unfamiliar_file`, else None (the familiar/unfamiliar contrast is then skipped)."""
    if hasattr(task, "unfamiliar_prompts"):
        return task.unfamiliar_prompts(random.Random(BASE_SEED), n)
    if cfg.probe.unfamiliar_file:
        lines = [s for s in Path(cfg.probe.unfamiliar_file).read_text().splitlines() if s.strip()]
        return lines[:n] or None
    return None


def base_curve_path(cfg: TrainConfig) -> Path:
    """Where the base model's pass@k curve is cached: keyed by everything that changes it."""
    model = {k: v for k, v in asdict(cfg.model).items() if k not in ("name", "attn_impl")}
    key = {"model": model, "task": asdict(cfg.task), "k_max": cfg.probe.pass_k_max,
           "prompts": cfg.probe.pass_prompts, "T": cfg.rollout.temperature, "seed": BASE_SEED, "v": 1}
    files = input_stamps(cfg)
    if files:  # the lab has no files: its key, and cached curves, stay as they were
        key["files"] = files
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return Path(cfg.cache_dir) / f"probe-pass-{digest}.json"  # not "base-*": those are checkpoints


class Probes:
    """The fixed probe sets of one run and the probe pass of a round."""

    def __init__(self, state, cfg: TrainConfig, first_round: int):
        t0 = time.perf_counter()
        self.cfg, self.s = cfg, state
        task, tok, pc = state.task, state.tokenizer, cfg.probe
        val = list(task.val_problems)
        self.pass_problems = val[:pc.pass_prompts]
        self.familiar = [p.prompt for p in val[:pc.repr_prompts]]
        self.unfamiliar = unfamiliar_prompts(task, cfg, len(self.familiar))
        self.base_hidden = last_token_hidden(state.base, tok, self.familiar, cfg.model.logits_chunk_mb)
        gen = torch.Generator().manual_seed(BASE_SEED)
        # Base samples for the forward KL: drawn once, the same for every round and seed.
        n_fwd = pc.kl_samples
        self.base_ro = _sample_chunked(state.base, tok, self.pass_problems, n_fwd, cfg, gen)
        self.pending: dict[str, float] = {}
        if first_round == 0:
            self.pending = self.base_curve()
        self.setup_s = time.perf_counter() - t0  # counted in the first probe's time/probes

    def base_curve(self) -> dict[str, float]:
        path = base_curve_path(self.cfg)
        if path.is_file():
            return json.loads(path.read_text())
        gen = torch.Generator().manual_seed(BASE_SEED + 1)
        curve, _ = pass_curve(self.s.base, self.s.tokenizer, self.s.task, self.pass_problems, self.cfg, gen,
                              "eval/base_pass@")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(curve, indent=1) + "\n")
        os.replace(tmp, path)  # concurrent runs of the same base write the same numbers
        return curve

    def run(self, r: int) -> dict[str, float]:
        """The probe metrics of round r (empty off the probe schedule)."""
        if not is_probe_round(r, self.cfg):
            return {}
        t0 = time.perf_counter()
        s, cfg, pc = self.s, self.cfg, self.cfg.probe
        T = cfg.rollout.temperature
        out, self.pending = dict(self.pending), {}
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_033 + r + 17)
        curve, ro = pass_curve(s.model, s.tokenizer, s.task, self.pass_problems, cfg, gen, "eval/pass@")
        out.update(curve)
        mine = _first_samples(ro, len(self.pass_problems), pc.pass_k_max, pc.kl_samples)
        mb = cfg.model.logits_chunk_mb
        out["kl/rev_exact"] = exact_kl_mean(s.model, s.base, mine, T, mb)
        out["kl/fwd_exact"] = exact_kl_mean(s.base, s.model, self.base_ro, T, mb)
        hidden = last_token_hidden(s.model, s.tokenizer, self.familiar, mb)
        debiased = len(self.familiar) < DEBIAS_BELOW
        for i, (h, b) in enumerate(zip(hidden, self.base_hidden)):
            out[f"repr/cka/layer{i}"] = linear_cka(h, b, debiased=debiased)
        sets = {"familiar": hidden[-1]}
        if self.unfamiliar:
            sets["unfamiliar"] = last_token_hidden(s.model, s.tokenizer, self.unfamiliar, mb)[-1]
        for name, fn in SPARSITY.items():
            for which, h in sets.items():
                out[f"repr/sparsity/{name}/{which}"] = float(fn(h).mean())
        out["time/probes"] = time.perf_counter() - t0 + self.setup_s
        self.setup_s = 0.0
        return out
