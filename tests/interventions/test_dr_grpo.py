"""Dr. GRPO (spec §5.1, §3.2): the pipeline declares the advantage estimator without std
normalisation and the seq-mean-token-sum-norm aggregation with a constant scale."""

import pytest
import torch

from entropyctl.maths.advantage import compute_advantage
from entropyctl.maths.batch import TokenBatch
from entropyctl.interventions import InterventionError, RunSettings, _merge_settings, build


def test_declares_estimator_and_aggregation_with_its_constant_scale():
    pipe = build({"dr_grpo": {"loss_scale": 16}})
    assert pipe.names == ["grpo", "dr_grpo"]  # keeps the default surrogate
    assert pipe.advantage_estimator("grpo") == "dr_grpo"
    assert pipe.aggregation("token-mean", None) == ("seq-mean-token-sum-norm", 16.0)


def test_without_dr_grpo_the_run_config_decides():
    pipe = build({"grpo": None})
    assert pipe.advantage_estimator("grpo") == "grpo"
    assert pipe.aggregation("seq-mean-token-mean", 3.0) == ("seq-mean-token-mean", 3.0)


def test_worked_advantages_of_spec_11():
    pipe = build({"dr_grpo": None})
    adv = compute_advantage(torch.tensor([1.0, 0.0, 0.0, 0.0]), 4, pipe.advantage_estimator("grpo"), 1e-6)
    torch.testing.assert_close(adv, torch.tensor([0.75, -0.25, -0.25, -0.25]))
    grpo = compute_advantage(torch.tensor([1.0, 0.0, 0.0, 0.0]), 4, "grpo", 1e-6)
    torch.testing.assert_close(grpo, torch.tensor([1.499997, -0.499999, -0.499999, -0.499999]))


def test_loss_is_a_token_sum_over_the_constant():
    # on-policy: per-token loss -A; rows of 3 and 1 valid tokens: no 1/|o_i| down-weighting
    pipe = build({"dr_grpo": {"loss_scale": 4.0}})
    logp = torch.zeros(2, 3, requires_grad=True)
    b = TokenBatch(logp=logp, old_logp=torch.zeros(2, 3), adv=torch.tensor([[0.5] * 3, [-0.5] * 3]),
                   mask=torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]), h=torch.zeros(2, 3),
                   rewards=torch.zeros(2))
    loss, _ = pipe.loss(b, *pipe.aggregation("token-mean", None))
    assert loss.item() == pytest.approx((-0.5 * 3 + 0.5) / 4)
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.125] * 3, [0.125, 0.0, 0.0]]))


def test_scale_must_be_positive():
    with pytest.raises(InterventionError, match="loss_scale"):
        build({"dr_grpo": {"loss_scale": 0}})


def test_two_interventions_setting_one_choice_differently_is_an_error():
    with pytest.raises(InterventionError, match="a and b set agg_mode"):
        _merge_settings([("a", RunSettings(agg_mode="token-mean")),
                         ("b", RunSettings(agg_mode="seq-mean-token-sum-norm"))])
    assert _merge_settings([("a", RunSettings(loss_scale=2.0)), ("b", RunSettings(loss_scale=2.0))]) \
        == RunSettings(loss_scale=2.0)
