"""The two entropy controllers on a run whose entropy sits above its target for 10 optimiser
steps, then below it for 10: each moves its coefficient the right way, and the step it takes
moves entropy the right way compared with plain GRPO (a 3-token, 4-word policy whose sampled
tokens are the confident ones, with A = +1)."""

import pytest
import torch

from entropyctl.interventions import build
from entropyctl.maths.batch import TokenBatch
from entropyctl.maths.entropy import entropy_from_logits


def logits_with_top(p_top: float) -> torch.Tensor:
    """(1, 3, 4) logits: word 0 has probability p_top, the other three share the rest."""
    rest = (1 - p_top) / 3
    return torch.log(torch.tensor([p_top, rest, rest, rest])).expand(1, 3, 4).clone()


ABOVE = logits_with_top(0.96)  # h = 0.21 nats > 0.1, and word 0 is above EntroPIC's 0.95
BELOW = logits_with_top(0.999)  # h = 0.0089 nats < 0.1
IDS = torch.zeros(1, 3, dtype=torch.long)


def one_step(pipe, logits0: torch.Tensor, lr: float = 1.0) -> tuple[float, dict]:
    """One loss call and SGD step from logits0; the policy's mean token entropy after it."""
    logits = logits0.clone().requires_grad_(True)
    logp = torch.log_softmax(logits, -1).gather(-1, IDS[..., None]).squeeze(-1)
    b = TokenBatch(logp=logp, old_logp=logp.detach(), adv=torch.ones(1, 3), mask=torch.ones(1, 3),
                   h=entropy_from_logits(logits), rewards=torch.ones(1))
    loss, stats = pipe.loss(b, "token-mean", None)
    loss.backward()
    pipe.step()
    with torch.no_grad():
        return entropy_from_logits(logits - lr * logits.grad).mean().item(), {k: float(v) for k, v in stats.items()}


def test_controllers_follow_entropy_above_then_below_the_target():
    pipe = build({"adaptive_entropy": {"target": 0.1, "coef_init": 0.004, "delta": 0.001, "coef_max": 0.02},
                  "entropic": {"target": 0.1}})
    plain = build({})
    h_grpo = {name: one_step(plain, x)[0] for name, x in (("above", ABOVE), ("below", BELOW))}
    trace = {"above": [], "below": []}
    for phase, x in (("above", ABOVE), ("below", BELOW)):
        for _ in range(10):
            h_after, stats = one_step(pipe, x)
            trace[phase].append((stats, h_after))
    up = [s for s, _ in trace["above"]]
    down = [s for s, _ in trace["below"]]
    coef = [s["adaptive_entropy/coef"] for s in up + down]
    # adaptive_entropy: c falls to coef_min while entropy is above the target (and is not
    # applied), then climbs once it is below, and the bonus is on
    assert coef[0] == pytest.approx(0.004) and coef[9] == 0.0 and all(a >= b for a, b in zip(coef[:10], coef[1:10]))
    assert all(b > a for a, b in zip(coef[11:20], coef[12:20])) and coef[19] > 0.005
    assert all(s["adaptive_entropy/coef_applied"] == 0 for s in up)
    assert all(s["adaptive_entropy/coef_applied"] > 0 for s in down[1:])
    # entropic: alpha > 0 above the target with the integral growing, < 0 below it, integral falling
    assert all(s["entropic/alpha"] > 0 for s in up) and up[-1]["entropic/integral"] > up[0]["entropic/integral"]
    assert all(s["entropic/alpha"] < 0 for s in down)
    assert down[-1]["entropic/integral"] < down[0]["entropic/integral"]
    # and the steps: lower entropy than plain GRPO's step above the target, higher below it
    assert all(h < h_grpo["above"] for _, h in trace["above"])
    assert all(h > h_grpo["below"] for _, h in trace["below"][1:])
