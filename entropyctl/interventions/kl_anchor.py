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
from entropyctl.interventions import InterventionError, check_param, register
from entropyctl.maths.losses import kl_estimate, masked_mean

KINDS = ("k1", "k2", "k3", "abs")
# verl's actor.kl_loss_type names for the same estimators (core_algos.kl_penalty)
VERL_NAMES = {"kl": "k1", "mse": "k2", "low_var_kl": "k3"}


@dataclass
class KlAnchorConfig:
    # verl's actor.kl_loss_coef 1e-3 is ~100x too weak at the lab's lr and length; 0.1 acts.
    coef: float = 0.1
    kind: str = "k3"  # verl actor.kl_loss_type low_var_kl (= k3); verl's names are accepted

    def __post_init__(self) -> None:
        check_param("kl_anchor", self, "coef", 0 <= self.coef < float("inf"), "a number >= 0")
        plus = "+" if self.kind.endswith("+") else ""
        base = VERL_NAMES.get(self.kind.rstrip("+"), self.kind.rstrip("+"))
        if base not in KINDS or self.kind.count("+") > 1:
            raise InterventionError(
                f"intervention.kl_anchor.kind={self.kind} is not an estimator; choose one of "
                f"{', '.join(KINDS)} (or verl's {', '.join(VERL_NAMES)}), optionally with '+'"
            )
        self.kind = base + plus


@register("kl_anchor", KlAnchorConfig, stage="penalty", needs_ref=True)
def kl_anchor(b: TokenBatch, cfg: KlAnchorConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-token penalty (B, T) = coef * kl(logp, ref_logp), {"kl_anchor/kl": its masked mean}."""
    if b.ref_logp is None:
        raise InterventionError("kl_anchor needs the base model's log-probs (ref_logp); none were scored")
    kl = kl_estimate(b.logp, b.ref_logp, cfg.kind)
    return cfg.coef * kl, {"kl_anchor/kl": masked_mean(kl.detach(), b.mask)}
