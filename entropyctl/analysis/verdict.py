"""The narrowing verdict of `entropyctl compare` (issue 10; docs/collapse-or-convergence.md).

When RL narrows a model, did the policy lose its spread of choices (entropy collapse), did it
commit to one inherited format or representation (convergence), and did an intervention that
fixes one touch the other? For each group against the baseline this answers, with compare's own
statistics (Welch difference and interval, Holm-adjusted p across the groups on each question):

    did it keep policy entropy (per response; at the first position), format diversity,
    representations closer to the base (CKA), pass@k at the largest k, and reward?

Each answer is "kept" (significantly higher than the baseline after Holm), "lost"
(significantly lower) or "no evidence"; the label comes from the numbers only, never from the
group's name. Per run it also reports how well the covariance prediction cov/pred_dH tracks the
measured entropy change of the next round (Pearson r), the check on spec §1.3.

Per-run values: every-round keys are the mean of the last `last_k` logged values (as in the
rest of compare); probe keys, logged every `probe.every` rounds, the mean of their last
PROBE_LAST logged values so the answer is about the end of the run.
Pure functions on rows; numpy and scipy only (through compare), never torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from entropyctl.analysis import robust
from entropyctl.analysis.compare import LEVEL, RunInput, holm, last_k_mean, mean_ci, welch
from entropyctl.analysis.columns import columns
from entropyctl.analysis.stats import clip_pair
from entropyctl.runstore.store import json_safe

ALPHA = 0.05  # Holm-adjusted p below which a difference earns "kept" or "lost"
PROBE_LAST = 2
KEPT, LOST, NO_EVIDENCE = "kept", "lost", "no evidence"
CKA_PREFIX = "repr/cka/layer"
PASS_PREFIX = "eval/pass@"
PROBE_PREFIXES = ("repr/", "kl/rev_exact", "kl/fwd_exact", "eval/pass@", "eval/base_pass@")


@dataclass(frozen=True)
class Question:
    name: str  # stable id in compare.json
    text: str  # what the row asks
    key: str  # the metric; "kept" = higher than the baseline


SATURATED = 0.99  # a pass@k the baseline reaches on (nearly) every prompt can show no loss


def questions(runs: list[RunInput], baseline: str | None = None, last_k: int = 1) -> list[Question]:
    """The questions these runs can answer: CKA at the deepest logged layer; pass@k at the
    largest logged k where the baseline has not saturated (final mean < SATURATED; on the lab
    pass@64 is 1 for every model), else the largest k."""
    keys = {k for r in runs for k in r.cols}
    qs = [Question("entropy_per_response", "policy entropy per response", "entropy/seqsum"),
          Question("entropy_first", "policy entropy at the first position", "entropy/first"),
          Question("format_diversity", "format diversity (format entropy)", "format/entropy")]
    layers = [int(k.removeprefix(CKA_PREFIX)) for k in keys
              if k.startswith(CKA_PREFIX) and k.removeprefix(CKA_PREFIX).isdigit()]
    if layers:
        qs.append(Question("repr_close_to_base", f"representations close to the base (CKA, layer {max(layers)})",
                           f"{CKA_PREFIX}{max(layers)}"))
    ks = [int(k.removeprefix(PASS_PREFIX)) for k in keys
          if k.startswith(PASS_PREFIX) and k.removeprefix(PASS_PREFIX).isdigit()]
    if ks and baseline is not None:
        base_runs = [r for r in runs if r.group == baseline]

        def base_mean(k: int) -> float:
            vals = [v for v in (final_value(r.cols, f"{PASS_PREFIX}{k}", last_k) for r in base_runs)
                    if math.isfinite(v)]
            return float(np.mean(vals)) if vals else math.nan

        open_ks = [k for k in ks if base_mean(k) < SATURATED]
        ks = open_ks or ks
    if ks:
        qs.append(Question("pass_at_large_k", f"pass@{max(ks)} (exploration at large k)", f"{PASS_PREFIX}{max(ks)}"))
    qs.append(Question("reward", "reward (validation accuracy; lost = a reward cost)", "eval/acc"))
    return qs


def final_value(rows: Any, key: str, last_k: int) -> float:
    k = PROBE_LAST if key.startswith(PROBE_PREFIXES) else last_k
    return last_k_mean(rows, key, k)


def label(test: dict[str, Any], alpha: float = ALPHA) -> str:
    """kept / lost / no evidence from the difference and its Holm-adjusted p."""
    p, diff = test.get("p_holm"), test.get("diff")
    if p is None or diff is None or not math.isfinite(p) or not math.isfinite(diff) or p >= alpha:
        return NO_EVIDENCE
    return KEPT if diff > 0 else LOST


def dH_prediction(rows: list[dict[str, Any]]) -> float:
    """Pearson r between cov/pred_dH of round r and entropy/tokmean[r+1] - entropy/tokmean[r]
    (consecutive logged rounds only); NaN with fewer than 3 pairs or no spread."""
    cols = columns(rows)
    px, py = cols.get_xy("cov/pred_dH")
    hx, hy = cols.get_xy("entropy/tokmean")
    H = dict(zip(hx.tolist(), hy.tolist()))
    pairs = [(p, H[r + 1] - H[r]) for r, p in zip(px.tolist(), py.tolist()) if r in H and r + 1 in H]
    if len(pairs) < 3:
        return math.nan
    x, y = np.asarray(pairs, dtype=np.float64).T
    if x.std() == 0 or y.std() == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def narrowing(result: dict[str, Any], runs: list[RunInput]) -> dict[str, Any]:
    """{group: {...}}: per group its covariance check and, against the baseline, one answer per
    question with diff, interval, p, Holm-adjusted p and label. Non-finite numbers are None."""
    included = {(r["id"], r["path"]) for r in result["runs"] if r["included"]}
    kept = [r for r in runs if (r.id, r.path) in included]
    names = [g["name"] for g in result["groups"]]
    base = result["baseline"]
    last_k = result["last_k"]
    qs = questions(kept, base, last_k)
    values = {g: {q.key: [final_value(r.cols, q.key, last_k) for r in kept if r.group == g] for q in qs}
              for g in names}
    out: dict[str, Any] = {}
    for g in names:
        members = [r for r in kept if r.group == g]
        out[g] = {"baseline": g == base, "answers": {},
                  "cov_predicts_dH": mean_ci([dH_prediction(r.cols) for r in members], LEVEL)}
    others = [g for g in names if g != base]
    boot, gi = robust.Resampler(), {g: i for i, g in enumerate(names)}
    if base is not None:
        for q in qs:
            tests = [welch(values[g][q.key], values[base][q.key], LEVEL) for g in others]
            # intervals clipped to the differences the metric's range allows (robust.RANGES)
            bounds = robust.diff_range(robust.range_for(q.key, *(values[g][q.key] for g in names)))
            for g, t, p_holm in zip(others, tests, holm([t["p"] for t in tests])):
                t = {**t, "p_holm": p_holm, **robust.iqm_diff(values[g][q.key], values[base][q.key], boot, gi[g],
                                                              gi[base], None)}
                t["lo"], t["hi"] = clip_pair(t["lo"], t["hi"], bounds)
                t["iqm_lo"], t["iqm_hi"] = clip_pair(t["iqm_lo"], t["iqm_hi"], bounds)
                out[g]["answers"][q.name] = {"question": q.text, "key": q.key, **t, "label": label(t)}
    for g in others:
        out[g]["summary"] = summary(out[g]["answers"])
    return json_safe(out)


def summary(answers: dict[str, Any]) -> str:
    """One line a reader can quote: what it kept and lost against the baseline."""
    kept = [a["question"].split(" (")[0] for a in answers.values() if a["label"] == KEPT]
    lost = [a["question"].split(" (")[0] for a in answers.values() if a["label"] == LOST]
    parts = []
    if kept:
        parts.append("kept more " + ", ".join(kept) + " than the baseline")
    if lost:
        parts.append("kept less " + ", ".join(lost) + " than the baseline")
    return "; ".join(parts) if parts else "no difference from the baseline shown"


# ----------------------------------------------------------------------------- as text


def _num(v: Any, signed: bool = False) -> str:
    if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
        return "—"
    return f"{v:+.3g}" if signed else f"{v:.3g}"


def answer_cell(a: dict[str, Any] | None, long: bool) -> str:
    """`kept: +0.41 [+0.12, +0.70], Holm p=0.012` (reports) or two lines (terminal)."""
    if not a:
        return "—"
    if a.get("diff") is None:
        return f"{NO_EVIDENCE} ({a.get('note') or 'not logged'})"
    ci = f" [{_num(a['lo'], True)}, {_num(a['hi'], True)}]" if a.get("lo") is not None else ""
    p = a.get("p_holm")
    ptext = "Holm p=—" if p is None else ("Holm p<0.001" if p < 1e-3 else f"Holm p={p:.3f}")
    note = a.get("note") or ""
    why = f" ({note if long else note.split(':')[0]})" if note else ""
    sep = ", " if long else "\n"
    return f"{a['label']}{why}: {_num(a['diff'], True)}{ci}{sep}{ptext}"


def narrowing_table(result: dict[str, Any], long: bool) -> tuple[list[str], list[list[str]]] | None:
    """Rows = questions, columns = groups against the baseline; last rows the covariance check
    and the summary."""
    nar = result.get("narrowing") or {}
    others = [g for g, v in nar.items() if not v["baseline"]]
    if not result.get("baseline") or not others:
        return None
    head = ["did it keep …"] + [f"{g} vs {result['baseline']}" for g in others]
    names = list(dict.fromkeys(q for g in others for q in nar[g]["answers"]))
    rows = []
    for q in names:
        text = next(nar[g]["answers"][q]["question"] for g in others if q in nar[g]["answers"])
        rows.append([text] + [answer_cell(nar[g]["answers"].get(q), long) for g in others])
    cov = lambda g: nar[g]["cov_predicts_dH"]  # noqa: E731
    rows.append(["Cov(logp, A) predicts next ΔH (Pearson r, mean over seeds)"]
                + [f"{_num(cov(g)['mean'])} (baseline {_num(cov(result['baseline'])['mean'])})" for g in others])
    rows.append(["reading"] + [nar[g]["summary"] for g in others])
    return head, rows


INTRO = ("Each row asks whether the group kept more of something than the baseline: 'kept' = higher, "
         "'lost' = lower, both with Holm-adjusted p < 0.05 across the groups on that row; otherwise "
         "'no evidence'. Cells give the difference of means with its 95 % Welch interval. Entropy rows "
         "answer the entropy-collapse question (the policy's spread), format entropy and CKA the "
         "convergence question (committing to one inherited format or representation), pass@k at "
         "large k whether exploration was squeezed, reward what it cost. Probe values (CKA, pass@k) "
         f"are the mean of each run's last {PROBE_LAST} probes; the others of the last k values.")
