"""KL anchor: a KL-to-base penalty in the loss (GRPO style; spec §5.4, verl `use_kl_loss`).

A penalty stage: adds coef * kl(logp, ref_logp) per token, aggregated with the surrogate in
the run's mode, where ref_logp is the frozen base model's log-prob of the sampled token
(the rescoring pass). Estimators (losses.kl_estimate): k1 = lr, k2 = lr^2 / 2,
k3 = exp(-lr) + lr - 1 (verl low_var_kl), abs = |lr|, with lr = logp - ref_logp; a trailing
'+' ('k3+') keeps the estimator's value with k2's gradient (straight-through).

Run: entropyctl train intervention=kl_anchor   (watch kl/base_k3)
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from entropyctl.maths.batch import TokenBatch
from entropyctl.interventions import InterventionError, register
from entropyctl.maths.losses import kl_estimate, masked_mean

KINDS = ("k1", "k2", "k3", "abs")


@dataclass
class KlAnchorConfig:
    coef: float = 1e-3  # verl actor.kl_loss_coef
    kind: str = "k3"  # verl actor.kl_loss_type low_var_kl (= k3)

    def __post_init__(self) -> None:
        if self.kind.rstrip("+") not in KINDS or self.kind.count("+") > 1:
            raise InterventionError(
                f"kl_anchor.kind is {self.kind!r}; choose one of {', '.join(KINDS)}, optionally with '+'"
            )


@register("kl_anchor", KlAnchorConfig, stage="penalty", needs_ref=True)
def kl_anchor(b: TokenBatch, cfg: KlAnchorConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-token penalty (B, T) = coef * kl(logp, ref_logp), {"kl_anchor/kl": its masked mean}."""
    if b.ref_logp is None:
        raise InterventionError("kl_anchor needs the base model's log-probs (ref_logp); none were scored")
    kl = kl_estimate(b.logp, b.ref_logp, cfg.kind)
    return cfg.coef * kl, {"kl_anchor/kl": masked_mean(kl.detach(), b.mask)}
