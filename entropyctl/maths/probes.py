"""The maths behind the probes (issue 10): unbiased pass@k (spec §6), exact KL between two
full-vocabulary distributions (spec §9), linear CKA (spec §10.1) and activation sparsity
(spec §10.2). Free functions over tensors, float64 where rounding would show."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from entropyctl.config import CKA_MIN_EXAMPLES


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k) in the stable
    product form 1 - prod_{j=n-c+1}^{n} (1 - k/j) (spec §6). c = 0 is 0 whatever k is (the
    reference's stored version wrongly returns 1 for c = 0, k > n); k must not exceed n."""
    if c == 0:
        return 0.0
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem (got {n})")
    if n - c < k:
        return 1.0
    prod = 1.0
    for j in range(n - c + 1, n + 1):
        prod *= 1.0 - k / j
    return 1.0 - prod


def pass_at_k_curve(correct: list[int], n: int, ks: list[int]) -> dict[int, float]:
    """Mean pass@k over problems, each with `correct[i]` of n samples correct."""
    return {k: sum(pass_at_k(n, c, k) for c in correct) / max(1, len(correct)) for k in ks}


def powers_of_two(k_max: int) -> list[int]:
    """1, 2, 4, ... up to k_max (k_max itself included when it is not a power of two)."""
    ks, k = [], 1
    while k <= k_max:
        ks.append(k)
        k *= 2
    if ks[-1] != k_max:
        ks.append(k_max)
    return ks


def exact_kl(logits_p: Tensor, logits_q: Tensor) -> Tensor:
    """(..., V) x (..., V) -> (...): KL(p || q) = sum_v p_v (log p_v - log q_v) per position,
    p = softmax(logits_p), q = softmax(logits_q); pass temperature-scaled logits (spec §9)."""
    lp = torch.log_softmax(logits_p.double(), dim=-1)
    lq = torch.log_softmax(logits_q.double(), dim=-1)
    return (lp.exp() * (lp - lq)).sum(-1).clamp(min=0.0)  # clamp: rounding below 0 only


def _hsic_debiased(K: Tensor, L: Tensor) -> Tensor:
    """Unbiased HSIC U-statistic (Song et al. 2007) of two Gram matrices, up to a factor that
    cancels in CKA."""
    n = K.shape[0]
    K = K - torch.diag(torch.diag(K))
    L = L - torch.diag(torch.diag(L))
    one = torch.ones(n, 1, dtype=K.dtype)
    KL = K @ L
    trace = torch.trace(KL)
    mid = (one.T @ K @ one) * (one.T @ L @ one) / ((n - 1) * (n - 2))
    last = 2.0 / (n - 2) * (one.T @ KL @ one)
    return (trace + mid - last).squeeze() / (n * (n - 3))


def linear_cka(X: Tensor, Y: Tensor, debiased: bool = False) -> float:
    """Linear CKA between representations X (n, p1) and Y (n, p2) of the same n examples
    (rows aligned; spec §10.1), in float64. The biased form is
    ||Y~^T X~||_F^2 / (||X~^T X~||_F ||Y~^T Y~||_F) on column-centred X~, Y~; the debiased
    form replaces each HSIC by its U-statistic (less inflated for small n; needs n > 3)."""
    X, Y = X.double(), Y.double()
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"CKA needs the same examples on both sides ({X.shape[0]} vs {Y.shape[0]} rows)")
    X = X - X.mean(0, keepdim=True)
    Y = Y - Y.mean(0, keepdim=True)
    if not debiased:
        num = (Y.T @ X).pow(2).sum()
        den = torch.linalg.matrix_norm(X.T @ X) * torch.linalg.matrix_norm(Y.T @ Y)
        return float(num / den) if den > 0 else math.nan
    if X.shape[0] < CKA_MIN_EXAMPLES:
        raise ValueError(f"debiased CKA needs at least {CKA_MIN_EXAMPLES} examples")
    K, L = X @ X.T, Y @ Y.T
    kl, kk, ll = _hsic_debiased(K, L), _hsic_debiased(K, K), _hsic_debiased(L, L)
    den = torch.sqrt(kk * ll)
    return float(kl / den) if den > 0 else math.nan


def hoyer(h: Tensor) -> Tensor:
    """(..., d) -> (...): Hoyer sparsity (sqrt(d) - |h|_1/|h|_2) / (sqrt(d) - 1); 1 = one-hot,
    0 = flat (spec §10.2). A zero vector gives 0."""
    h = h.double()
    d = h.shape[-1]
    l1, l2 = h.abs().sum(-1), h.norm(dim=-1)
    ratio = torch.where(l2 > 0, l1 / l2.clamp(min=1e-300), torch.full_like(l1, math.sqrt(d)))
    return (math.sqrt(d) - ratio) / (math.sqrt(d) - 1)


def top_energy(h: Tensor, frac: float = 0.05) -> Tensor:
    """(..., d) -> (...): share of the L2 energy sum h_j^2 held by the top ceil(frac*d)
    coordinates by |h_j| (spec §10.2, the README's L2 form)."""
    h = h.double()
    k = max(1, math.ceil(frac * h.shape[-1]))
    e = h.pow(2)
    return e.topk(k, dim=-1).values.sum(-1) / e.sum(-1).clamp(min=1e-300)


def gini(h: Tensor) -> Tensor:
    """(..., d) -> (...): Gini coefficient of |h|, G = 2 sum_j j |h|_(j) / (d sum|h|) - (d+1)/d
    with |h| sorted ascending and j 1-indexed (spec §10.2); 0 = flat, (d-1)/d = one-hot."""
    a = h.double().abs().sort(dim=-1).values
    d = a.shape[-1]
    j = torch.arange(1, d + 1, dtype=a.dtype)
    return 2 * (j * a).sum(-1) / (d * a.sum(-1).clamp(min=1e-300)) - (d + 1) / d


SPARSITY = {"hoyer": hoyer, "top5_energy": top_energy, "gini": gini}
