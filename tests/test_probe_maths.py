"""entropyctl.maths.probes against the spec's worked values (§6 pass@k, §9 exact KL, §10.1 CKA,
§10.2 sparsity) and the properties the spec asks to test."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from entropyctl.maths.probes import (
    exact_kl, gini, hoyer, linear_cka, pass_at_k, pass_at_k_curve, powers_of_two, top_energy,
)


@pytest.mark.parametrize("n,c,k,expected", [
    (10, 3, 1, 0.3), (10, 3, 5, 0.9166667), (10, 0, 5, 0.0), (2, 0, 5, 0.0), (6, 3, 1, 0.5),
    (100, 1, 10, 0.1), (256, 5, 64, 0.7658075),
])
def test_pass_at_k_matches_the_spec_table(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-7)


def test_pass_at_k_is_one_when_every_draw_of_k_holds_a_correct_sample():
    assert pass_at_k(10, 8, 3) == 1.0  # n - c = 2 < k


def test_pass_at_k_refuses_k_above_n_when_something_is_correct():
    with pytest.raises(ValueError, match="at least 5 samples"):
        pass_at_k(4, 1, 5)


def test_pass_curve_averages_problems_and_ks_are_powers_of_two():
    # one problem always right, one never: pass@k = 0.5 at every k
    assert pass_at_k_curve([4, 0], 4, [1, 2, 4]) == {1: 0.5, 2: 0.5, 4: 0.5}
    assert powers_of_two(64) == [1, 2, 4, 8, 16, 32, 64]
    assert powers_of_two(48) == [1, 2, 4, 8, 16, 32, 48]


def _seeded_example():
    np.random.seed(1337)  # spec §10.1: numpy legacy seed 1337
    X = np.random.randn(100, 10)
    Y = np.random.randn(100, 10) + X
    return torch.tensor(X), torch.tensor(Y)


def test_cka_matches_the_spec_worked_values():
    X, Y = _seeded_example()
    assert linear_cka(X, Y) == pytest.approx(0.55761, abs=5e-6)
    assert linear_cka(X, Y, debiased=True) == pytest.approx(0.51346, abs=5e-6)


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_invariances(debiased):
    X, Y = _seeded_example()
    ref = linear_cka(X, Y, debiased)
    q, _ = torch.linalg.qr(torch.randn(10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    assert linear_cka(X @ q, Y, debiased) == pytest.approx(ref, abs=1e-10)  # orthogonal transform
    assert linear_cka(3.5 * X + 2.0, Y, debiased) == pytest.approx(ref, abs=1e-10)  # scale and shift
    assert linear_cka(X, X, debiased) == pytest.approx(1.0, abs=1e-12)
    assert 0.0 <= ref <= 1.0


def test_cka_refuses_unaligned_examples():
    with pytest.raises(ValueError, match="same examples"):
        linear_cka(torch.zeros(5, 2), torch.zeros(6, 2))


def test_exact_kl_of_two_known_distributions():
    p = torch.tensor([0.5, 0.5]).log()
    q = torch.tensor([0.9, 0.1]).log()
    # KL(p||q) = 0.5 ln(0.5/0.9) + 0.5 ln(0.5/0.1) = 0.5 ln(25/9)
    assert float(exact_kl(p, q)) == pytest.approx(0.5108256, abs=1e-7)
    # KL(q||p) = 0.9 ln 1.8 + 0.1 ln 0.2
    assert float(exact_kl(q, p)) == pytest.approx(0.3680642, abs=1e-7)
    assert float(exact_kl(p, p)) == 0.0


def test_exact_kl_is_per_position_and_temperature_enters_through_the_logits():
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    kl = exact_kl(logits, torch.zeros_like(logits))
    assert kl.shape == (1, 2) and float(kl[0, 1]) == 0.0 and float(kl[0, 0]) > 0
    # a high temperature flattens both distributions: the divergence shrinks
    assert float(exact_kl(logits / 10, torch.zeros_like(logits))[0, 0]) < float(kl[0, 0])


def test_sparsity_of_a_one_hot_and_a_flat_vector():
    one_hot, flat = torch.tensor([0.0, 0.0, 3.0, 0.0]), torch.ones(4)
    assert float(hoyer(one_hot)) == pytest.approx(1.0)
    assert float(hoyer(flat)) == pytest.approx(0.0, abs=1e-12)
    assert float(gini(one_hot)) == pytest.approx(0.75)  # (d - 1) / d
    assert float(gini(flat)) == pytest.approx(0.0, abs=1e-12)
    # 100 coordinates, top 5 % = 5 of them: a flat vector puts 5 % of its energy there
    assert float(top_energy(torch.ones(100))) == pytest.approx(0.05)
    assert float(top_energy(torch.eye(100)[3])) == pytest.approx(1.0)


def test_sparsity_rows_are_independent():
    h = torch.stack([torch.tensor([0.0, 0.0, 1.0, 0.0]), torch.ones(4)])
    assert hoyer(h).tolist() == pytest.approx([1.0, 0.0])
    assert not math.isnan(float(hoyer(torch.zeros(4))))
