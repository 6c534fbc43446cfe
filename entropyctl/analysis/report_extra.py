"""Texts and tables of the compare report beyond the statistics: "How to read this" at the top,
the intros that say which statistic a table shows (and why it was chosen), per-format
accuracy, and the last round's sample completions per group. Plain-text cells: report.py
escapes them for markdown and HTML, the terminal prints them as text.
"""

from __future__ import annotations

from typing import Any

SAMPLES_PER_GROUP = 3
SAMPLE_CHARS = 300  # a longer completion is cut, with "…"

Table = tuple[list[str], list[list[str]]]


def how_to_read(result: dict[str, Any]) -> str:
    """The paragraph at the top of report.md / report.html."""
    k, base = result["last_k"], result["baseline"]
    boot = result.get("stat") == "bootstrap"
    first = ("the interquartile mean (IQM, the mean of the middle 50 % of runs) with a 95 % bootstrap "
             "interval" if boot else "the mean with its 95 % Student-t interval")
    diff = ("the IQM difference with a stratified bootstrap interval, the probability of improvement (PoI: the "
            "chance that a run of the group beats a run of the baseline; 0.5 = no difference) and, beside them, "
            "Welch's Holm-adjusted p" if boot else
            "the difference of means with its Welch interval, Welch's p, Holm's correction across the groups, "
            "Hedges' g and the probability of improvement (PoI, 0.5 = no difference)")
    against = (f"Against the baseline {base}, each cell gives {diff}. An interval that excludes 0 (or a PoI "
               "far from 0.5) is a difference the seeds support." if base else
               "There is no baseline group, so nothing is tested (pass --baseline NAME).")
    return (f"Each run is reduced to one number per metric ('final' = the mean of its last {k} logged values). "
            f"Each group's cell shows {first} across its seeds (statistic: {result.get('stat', 'welch')}; "
            f"{result.get('stat_reason', '')}). {against} Intervals are clipped to a metric's natural range "
            "(accuracies and shares in [0, 1], entropies and KL >= 0). Curves are the mean over seeds with a "
            "band (bootstrap at >= 3 seeds, min–max at 2). Runs that did not finish are listed at the end "
            "and left out. compare.json holds every number; the metric glossary is at the bottom.")


def groups_intro(result: dict[str, Any]) -> str:
    k = result["last_k"]
    if result.get("stat") == "bootstrap":
        what = ("IQM across seeds with its 95 % percentile bootstrap interval (min–max at n = 2); "
                "compare.json also has the mean with its Student-t interval")
    else:
        what = "Mean across seeds with its 95 % t-interval (clipped to the metric's range)"
    return (f"{what}; 'final' values are the mean of the last {k} logged values of each run; "
            "(n=…) where fewer seeds logged the metric.")


def baseline_intro(result: dict[str, Any]) -> str:
    if result.get("stat") == "bootstrap":
        return ("IQM difference (group − baseline) with its stratified bootstrap 95 % interval (each group "
                "resampled on its own; min–max of the run differences when a side has n < 3), the probability "
                "of improvement PoI = P(X > Y) + P(X = Y)/2 over run pairs, and Welch's p with Holm's "
                "correction across the groups on each metric.")
    return ("Difference of means with the Welch–Satterthwaite interval, Welch's t-test p, Holm-adjusted "
            "p across the groups on each metric, Hedges' g, and the probability of improvement (PoI).")


def format_acc_table(result: dict[str, Any], num: Any) -> Table | None:
    """Rows = answer formats, columns = groups: final format/acc/<name> (share of full-reward
    responses among the responses in that format), IQM or mean as the groups table."""
    facc = result.get("format_acc") or {}
    formats = facc.get("formats") or []
    if not formats:
        return None
    boot = result.get("stat") == "bootstrap"
    names = [g["name"] for g in result["groups"]]
    head = ["format"] + names
    rows = []
    for f in formats:
        cells = []
        for g in names:
            s = facc["groups"].get(g, {}).get(f)
            if not s or s["n"] == 0:
                cells.append("—")
                continue
            c, lo, hi = (s["iqm"], s["iqm_lo"], s["iqm_hi"]) if boot else (s["mean"], s["lo"], s["hi"])
            ci = f" [{num(lo)}, {num(hi)}]" if lo is not None and hi is not None else ""
            cells.append(f"{num(c)}{ci} (n={s['n']})")
        rows.append([f] + cells)
    return head, rows


def samples_table(result: dict[str, Any]) -> Table | None:
    """A few completions of each group's last logged round (samples.jsonl of its runs)."""
    samples = result.get("samples") or {}
    rows = []
    for g in (x["name"] for x in result["groups"]):
        for s in samples.get(g, []):
            text = str(s.get("completion", ""))
            text = text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS] + "…"
            rows.append([g, str(s.get("run", "")), str(s.get("round", "")), str(s.get("prompt", ""))[:SAMPLE_CHARS],
                         text, str(s.get("reward", "")), str(s.get("format", ""))])
    if not rows:
        return None
    return ["group", "run", "round", "prompt", "completion", "reward", "format"], rows
