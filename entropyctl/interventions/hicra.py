"""HICRA: credit planning tokens more (Wang et al. 2025, "Emergent Hierarchical Reasoning
in LLMs through RL", arXiv 2509.03646; spec §8.3, the paper's form).

An advantage stage: on planning tokens (S_i, given by the task as `plan_mask`)

    A'_{i,t} = A_{i,t} + alpha |A_{i,t}|

so positive advantages grow by (1 + alpha) and negative ones shrink to (1 - alpha); other
tokens keep A. The shaped advantage then goes into whichever surrogate the run uses. In the
lab, planning tokens are the answer-format prefix, where the strategy is chosen
(`AdditionTask.plan_mask`). The authors' unreleased verl code reportedly uses an entropy
proxy instead (spec §8.3, unverified); this is the paper's token-set form.

Run: entropyctl train intervention=hicra
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from entropyctl.maths.batch import TokenBatch
from entropyctl.interventions import InterventionError, check_param, register
from entropyctl.maths.losses import masked_mean


@dataclass
class HicraConfig:
    alpha: float = 0.2  # the paper's alpha

    def __post_init__(self) -> None:
        # alpha > 1 would turn a planning token's negative advantage positive
        check_param("hicra", self, "alpha", 0 <= self.alpha <= 1, "in [0, 1]")


def hicra_advantage(adv: Tensor, plan_mask: Tensor, alpha: float) -> Tensor:
    """(B, T): adv + alpha * |adv| on planning tokens, adv elsewhere."""
    return adv + alpha * adv.abs() * plan_mask


@register("hicra", HicraConfig, stage="advantage")
def hicra(b: TokenBatch, cfg: HicraConfig) -> tuple[TokenBatch, dict[str, Tensor]]:
    """`b` with the shaped advantage, and {"hicra/plan_frac": share of valid tokens that plan}."""
    if b.plan_mask is None:
        raise InterventionError("hicra needs the task's planning-token mask (plan_mask); the task gave none")
    plan = b.plan_mask * b.mask
    return b.replace(adv=hicra_advantage(b.adv, plan, cfg.alpha)), {
        "hicra/plan_frac": masked_mean(plan.float(), b.mask)
    }
