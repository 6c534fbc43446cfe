"""Every statistic an intervention's loss call logs is named in the metric glossary."""

import pytest
import torch

from entropyctl.interventions import build, load_all
from entropyctl.maths.batch import TokenBatch
from entropyctl.runstore.glossary import CONDITIONAL, GLOSSARY

ROUND_STAGE = {"sft_refresh"}  # logs after the round, not in a loss call


@pytest.mark.parametrize("name", sorted(set(load_all()) - ROUND_STAGE))
def test_loss_call_statistics_are_in_the_glossary(name):
    torch.manual_seed(0)
    logp = torch.log(torch.rand(4, 6) * 0.9 + 0.1)
    b = TokenBatch(logp=logp, old_logp=logp + 0.1 * torch.randn(4, 6), adv=torch.randn(4, 1).expand(4, 6),
                   mask=torch.ones(4, 6), h=torch.rand(4, 6), rewards=torch.tensor([1.0, 0.0, 1.0, 0.0]),
                   ref_logp=logp - 0.1, plan_mask=torch.zeros(4, 6))
    _, stats = build({name: {}}).loss(b, "token-mean", None)
    unnamed = [k for k in stats if k not in GLOSSARY and k not in CONDITIONAL]
    assert not unnamed, unnamed
