"""Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training", arXiv 2503.20783;
spec §5.1, §3.2; verl docs/algo/grpo.md).

A settings stage: it changes two run-level choices and keeps the run's surrogate (grpo's
clipped PPO by default, or any other one stacked with it):
  * advantage: A_i = s_i - mean_g, no division by the group std (advantage.py `dr_grpo`);
  * aggregation: `seq-mean-token-sum-norm` = sum of per-token losses / C with a constant C,
    so long responses are not down-weighted by 1/|o_i|.
entropyctl implements the earlier verl form of that mode (sum / C, not also divided by the
number of responses; losses.agg_loss): C carries the minibatch size.
The run logs the settings it applies; `advantage.estimator` / `optim.agg_mode` in the saved
config are the ones it replaced.

Run: entropyctl train intervention=dr_grpo
"""

from __future__ import annotations

from dataclasses import dataclass

from entropyctl.interventions import InterventionError, RunSettings, register


@dataclass
class DrGrpoConfig:
    # C of seq-mean-token-sum-norm: a constant, "e.g. max response length" (verl docs); the
    # lab's task.max_new_tokens. verl's fallback (padded length T) varies by batch: not used.
    loss_scale: float = 16.0

    def __post_init__(self) -> None:
        if not self.loss_scale > 0:
            raise InterventionError(f"intervention.dr_grpo.loss_scale={self.loss_scale} must be > 0; give "
                                    "e.g. intervention.dr_grpo.loss_scale=16")


@register("dr_grpo", DrGrpoConfig, stage="settings")
def dr_grpo(cfg: DrGrpoConfig) -> RunSettings:
    """The advantage estimator and aggregation Dr. GRPO uses."""
    return RunSettings(advantage_estimator="dr_grpo", agg_mode="seq-mean-token-sum-norm",
                       loss_scale=float(cfg.loss_scale))
