"""Per-run numbers of `entropyctl compare`: one value per metric for one run (a "final" value is
the mean of its last k logged values), the half-life of entropy, reward AUC, t_dom (spec §7.5),
the winning format, the law's points and every run's ceiling b - a at once (fitlaw, spec §1.2).
Array code on a run's columns (analysis/columns.py), never a loop over rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Sequence

import numpy as np

from entropyctl.analysis.columns import Cols, columns
from entropyctl.analysis.columns import law_points as _law_points
from entropyctl.analysis.fitlaw import fit_law, fit_law_batch
from entropyctl.runstore.glossary import PER_RESPONSE_ENTROPY_KEY

DOM_Q = 0.9  # t_dom threshold: one format's share >= 90 % (spec §7.5 t_dom(q))
SHARE_PREFIX = "format/share/"
PASS_PREFIX = "eval/pass@"
COMPLETE = "finished"
RUN_FORMAT = "entropyctl run"  # RunInput.source["format"] of our own run dirs
IMPORTED = "imported"  # a run read from a foreign log: it counts like a finished run


@dataclass
class RunInput:
    """One run as compare sees it: identity, its group and its metrics rows."""

    id: str
    group: str
    status: str
    seed: Any
    rows: list[dict[str, Any]]
    path: str
    error: str | None  # run.json's one-line reason for a failed/diverged run
    source: dict[str, Any] = field(default_factory=lambda: {"format": RUN_FORMAT})  # provenance
    law: tuple[np.ndarray, np.ndarray] | None = None  # (H, R) paired by the importer (foreign logs)

    @cached_property
    def cols(self) -> Cols:
        """The rows as columns, built once (analysis/columns.py)."""
        return columns(self.rows)


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    doc: str


# Row order of every table. "final" = mean of the last k logged values of that key.
METRICS: tuple[Metric, ...] = (
    Metric("reward/mean", "reward", "final mean rollout reward"),
    Metric("eval/acc", "val acc", "final validation accuracy (sampled)"),
    Metric("eval/greedy_acc", "greedy acc", "final validation accuracy (greedy)"),
    Metric("entropy/tokmean", "H tok-mean", "final token-pooled entropy (nats)"),
    Metric("entropy/seqmean", "H seq-mean", "final per-response mean token entropy (nats)"),
    Metric("entropy/seqsum", "H per-resp", "final per-response entropy, summed over tokens (nats)"),
    Metric("entropy/first", "H first", "final entropy at the first completion position (nats)"),
    Metric("half_life", "H half-life", "rounds until per-response entropy first falls to half its first value"),
    Metric("reward_auc", "reward AUC", "area under the reward curve per round spanned (= time-averaged reward)"),
    Metric("ceiling", "ceiling b-a", "per-run fitted ceiling b - a of R = -a exp(H) + b (eval/acc vs entropy/seqmean)"),
    Metric("format/top_share", "top format", "final share of the most common answer format"),
    Metric("t_dom", "t_dom(90%)", "first round where one format's share >= 90 %"),
    Metric("kl/base_k3", "KL to base", "final k3 KL(policy || base) per token"),
    # task=curriculum (the plasticity probe): one value per run, absent elsewhere (then not shown)
    Metric("curriculum/kl_at_switch", "KL at switch", "KL(policy || base) when the curriculum switched to task B"),
    Metric("curriculum/rounds_to_threshold", "rounds to B",
           "rounds on task B until its reward first reached task.curriculum.threshold (missing: never)"),
)


# ----------------------------------------------------------------------------- per run


Rows = list[dict[str, Any]] | Cols  # a run's metrics rows, or their columns (faster)


def last_k_mean(rows: Rows, key: str, k: int) -> float:
    """Mean of the last k finite values of `key` (eval keys are sparser than rounds)."""
    ys = columns(rows).get_xy(key)[1]
    tail = ys[-k:]
    return float(tail.sum() / tail.size) if tail.size else math.nan  # sum/size: mean()'s overhead x 20,000 calls


def half_life(rounds: Sequence[float], H: Sequence[float]) -> float:
    """Rounds from the first logged value until H first drops to half of it; NaN if never.

    Integer rounds, no interpolation: the answer is a round a reader can look up in the log.
    """
    if len(H) == 0 or not H[0] > 0:
        return math.nan
    H = np.asarray(H, dtype=np.float64)
    below = H <= H[0] / 2
    if not below.any():
        return math.nan
    return float(rounds[int(below.argmax())] - rounds[0])


def reward_auc(rounds: Sequence[float], R: Sequence[float]) -> float:
    """Trapezoid area under R(round) divided by the rounds spanned, so runs of different
    lengths compare on the reward scale; a single point is its own value."""
    if len(R) == 0:
        return math.nan
    if len(R) == 1:
        return float(R[0])
    x, y = np.asarray(rounds, dtype=np.float64), np.asarray(R, dtype=np.float64)
    span = x[-1] - x[0]
    if span <= 0:
        return math.nan
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2 / span)


def format_shares(rows: Rows, prefix: str = SHARE_PREFIX) -> list[str]:
    """The format names logged as `format/share/<name>`, in order of first appearance."""
    return [k.removeprefix(prefix) for k in columns(rows) if k.startswith(prefix)]


def t_dom(rows: Rows, q: float) -> float:
    """First round at which one format's share is >= q (spec §7.5); NaN if it never is."""
    cols = columns(rows)
    firsts = [x[y >= q][0] for x, y in (cols[SHARE_PREFIX + f] for f in format_shares(cols)) if (y >= q).any()]
    return float(min(firsts)) if firsts else math.nan


def winner(rows: Rows, k: int) -> str | None:
    """The format with the largest final (last-k mean) share, or None if none is logged."""
    finals = {n: last_k_mean(rows, SHARE_PREFIX + n, k) for n in format_shares(rows)}
    finals = {n: v for n, v in finals.items() if math.isfinite(v)}
    return max(finals, key=finals.get) if finals else None


def law_points(rows: Rows | RunInput) -> tuple[np.ndarray, np.ndarray]:
    """(H, R) pairs for the law, as fit-law pairs them (analysis/runs.py `law_pairs`: eval/acc of
    round r with the entropy of the policy that produced it, logged in round r + 1). A run
    imported from a foreign log brings its pairs from the importer (`RunInput.law`)."""
    if isinstance(rows, RunInput):
        return rows.law if rows.law is not None else _law_points(rows.cols)
    return _law_points(columns(rows))


def run_summary(rows: Rows, k: int, pass_keys: Iterable[str], fit: bool = True) -> dict[str, float]:
    """One number per metric for one run (NaN where the run did not log what it needs).
    `fit=False` leaves the ceiling to the caller (compare fits every run at once)."""
    rows = columns(rows)
    out = {m.key: last_k_mean(rows, m.key, k) for m in METRICS if "/" in m.key}
    if not math.isfinite(out["format/top_share"]):
        # older runs log only per-format shares: the top share is their max
        finals = [last_k_mean(rows, SHARE_PREFIX + n, k) for n in format_shares(rows)]
        out["format/top_share"] = max(finals) if finals else math.nan
    out["half_life"] = half_life(*rows.get_xy(PER_RESPONSE_ENTROPY_KEY))
    out["reward_auc"] = reward_auc(*rows.get_xy("reward/mean"))
    if fit:
        law = fit_law(*law_points(rows))
        out["ceiling"] = law.ceiling if law.ok else math.nan
    out["t_dom"] = t_dom(rows, DOM_Q)
    for key in pass_keys:
        out[key] = last_k_mean(rows, key, k)
    return out


def ceilings(points: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """b - a of every run's law at once (fit_law_batch: the same numbers as fit_law per run)."""
    if not points:
        return np.zeros(0)
    width = max(1, max(len(h) for h, _ in points))
    H, R = np.full((len(points), width), np.nan), np.full((len(points), width), np.nan)
    for i, (h, r) in enumerate(points):
        H[i, :len(h)], R[i, :len(r)] = h, r
    fits = fit_law_batch(H, R)
    return np.where(fits.ok, fits.ceiling, np.nan)


def pass_keys(runs: Iterable[RunInput]) -> list[str]:
    """`eval/pass@<k>` keys logged by any run, sorted by k."""
    found = {key for r in runs for key in r.cols if key.startswith(PASS_PREFIX)}
    return sorted(found, key=lambda s: (_int_or(s.removeprefix(PASS_PREFIX)), s))


def _int_or(s: str) -> int:
    return int(s) if s.isdigit() else 1 << 30
