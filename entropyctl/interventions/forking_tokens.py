"""Forking tokens: train only on the top-rho entropy tokens ("Beyond the 80/20 Rule",
Wang et al. 2025, arXiv 2506.01939; spec §4; reference `get_global_entropy_top_mask`).

A mask stage: the surrogate is computed as usual, but the aggregation counts only the
k = ceil(rho * N) valid tokens with the largest current-policy entropy h. k is computed as
the authors' fork does, int(N * rho + 0.9999): equal to ceil(rho * N) except when the
fractional part of rho * N is below 1e-4 (N = 25, rho = 0.28 gives 7, where the float
ceil of 7.000000000000001 would give 8).

normalize_by = selected (authors' fork): the aggregation's denominator is the selected tokens,
so a response with no selected token is skipped by the seq-mean modes, never 0/0.
normalize_by = all (TRL, the paper's equation as recalled): the denominator keeps every valid
token, so the gradient is about rho times smaller (matters with grad clipping or added terms).
Selection is per loss call by default (the fork's micro-batch scope); `scope` widens it.

Run: entropyctl train intervention=forking_tokens  (stacks: intervention=[kl_cov,forking_tokens])
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from entropyctl.maths.batch import TokenBatch
from entropyctl.interventions import InterventionError, check_param, check_scope, register
from entropyctl.maths.losses import masked_mean, top_k_mask

NORMALIZE_BY = ("selected", "all")


@dataclass
class ForkingTokensConfig:
    frac: float = 0.2  # rho: actor_rollout_ref.model.entropy_top_ratio in the authors' scripts
    normalize_by: str = "selected"  # selected (authors' fork) | all (TRL top_entropy_quantile)
    scope: str = "micro_batch"  # micro_batch (per loss call, reference) | minibatch | round

    def __post_init__(self) -> None:
        if self.normalize_by not in NORMALIZE_BY:
            raise InterventionError(
                f"forking_tokens.normalize_by is {self.normalize_by!r}; choose one of {', '.join(NORMALIZE_BY)}"
            )
        check_param("forking_tokens", self, "frac", 0 < self.frac <= 1, "a share in (0, 1]")
        check_scope("forking_tokens", self.scope)


def forking_count(n_valid: int, frac: float) -> int:
    """k = max(1, int(N * rho + 0.9999)): ceil(rho N) as the authors' fork computes it."""
    return max(1, int(n_valid * frac + 0.9999))


def forking_select(b: TokenBatch, cfg: ForkingTokensConfig) -> Tensor:
    """(B, T) bool: the k highest-entropy valid tokens of `b`."""
    return top_k_mask(b.h, b.mask.bool(), forking_count(int(b.mask.sum().item()), cfg.frac))


@register("forking_tokens", ForkingTokensConfig, stage="mask", select=forking_select)
def forking_tokens(b: TokenBatch, cfg: ForkingTokensConfig, chosen: Tensor | None = None
                   ) -> tuple[TokenBatch, dict[str, Tensor]]:
    """`b` with loss_mask (and, for normalize_by=selected, mask) narrowed to the selected
    tokens; {"forking/frac_selected", "forking/h_threshold"}."""
    if chosen is None:
        chosen = forking_select(b, cfg)
    keep = (chosen & b.mask.bool()).to(b.mask.dtype)  # (B, T)
    stats = {"forking/frac_selected": masked_mean(keep, b.mask)}
    if keep.any():
        stats["forking/h_threshold"] = b.h.detach()[keep.bool()].min()
    if cfg.normalize_by == "selected":
        return b.replace(mask=b.mask * keep, loss_mask=b.loss_mask * keep), stats
    return b.replace(loss_mask=b.loss_mask * keep), stats
