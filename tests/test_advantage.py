import torch

from entropyctl.maths.advantage import compute_advantage, dr_grpo, grpo


def test_grpo_worked_values_spec_11():
    # spec §11: unbiased (n-1) std, eps 1e-6
    adv = grpo(torch.tensor([1.0, 0, 0, 1]), 4, 1e-6)
    torch.testing.assert_close(adv, torch.tensor([0.8660239, -0.8660239, -0.8660239, 0.8660239]))
    adv = grpo(torch.tensor([1.0, 0, 0, 0]), 4, 1e-6)
    torch.testing.assert_close(adv, torch.tensor([1.499997, -0.499999, -0.499999, -0.499999]))


def test_grpo_catches_population_std_bug():
    # population std would give 1.732 for the correct response
    assert abs(grpo(torch.tensor([1.0, 0, 0, 0]), 4, 1e-6)[0].item() - 1.732) > 0.2


def test_all_equal_group_has_zero_advantage():
    assert torch.equal(grpo(torch.ones(4), 4, 1e-6), torch.zeros(4))
    assert torch.equal(dr_grpo(torch.ones(4), 4, 1e-6), torch.zeros(4))


def test_dr_grpo_worked_values():
    torch.testing.assert_close(dr_grpo(torch.tensor([1.0, 0, 0, 0]), 4, 1e-6),
                               torch.tensor([0.75, -0.25, -0.25, -0.25]))


def test_groups_are_independent():
    r = torch.tensor([1.0, 0, 0, 1, 1, 1, 1, 1])
    adv = grpo(r, 4, 1e-6)
    torch.testing.assert_close(adv[:4], grpo(r[:4], 4, 1e-6))
    assert torch.equal(adv[4:], torch.zeros(4))


def test_unknown_estimator_names_the_valid_ones():
    try:
        compute_advantage(torch.zeros(4), 4, "ppo", 1e-6)
    except ValueError as e:
        assert "dr_grpo" in str(e) and "grpo" in str(e)
    else:
        raise AssertionError("expected ValueError")
