"""The report `entropyctl compare` writes: PNG plots, report.md and a self-contained report.html.

Input is the compare.json object (`entropyctl.analysis.compare.compare_runs`) plus the included runs' rows
for the curves. Everything is built in memory and returned as {file name: bytes}; the command
writes the files only once all of them exist, so a failure leaves the output folder untouched.
Every text that comes from a run (ids, group names from configs, error lines) is escaped:
`html.escape` in HTML, markdown metacharacters in report.md. matplotlib is imported inside
`render_plots` (Agg canvas, no pyplot state), so importing this module stays cheap.
"""

from __future__ import annotations

import base64
import html
import math
import re
from typing import Any

from entropyctl.analysis.compare import METRICS, PASS_PREFIX, RunInput, to_json
from entropyctl.analysis.report_extra import (
    baseline_intro, format_acc_table, groups_intro, how_to_read, samples_table,
)
from entropyctl.analysis.report_plots import PLOTS, law_text, visible
from entropyctl.analysis.verdict import INTRO as NARROWING_INTRO, narrowing_table

ROUND_KEYS = {"half_life", "t_dom"}
LABELS = {m.key: m.label for m in METRICS}
DOCS = {m.key: m.doc for m in METRICS}


def label(key: str) -> str:
    return LABELS.get(key) or (f"pass@{key.removeprefix(PASS_PREFIX)}" if key.startswith(PASS_PREFIX) else key)


def doc(key: str) -> str:
    return DOCS.get(key) or ("final unbiased pass@k (spec §6)" if key.startswith(PASS_PREFIX) else key)


# ----------------------------------------------------------------------------- numbers as text


def num(v: float | None, key: str = "", signed: bool = False) -> str:
    if v is None or not math.isfinite(v):
        return "—"
    sign = "+" if signed else ""
    a = abs(v)
    digits = 1 if key in ROUND_KEYS else 0 if a >= 100 else 1 if a >= 10 else 3
    text = f"{v:{sign}.{digits}f}"
    # -7e-10 (a k3 KL in float32 rounding) is shown as 0.000, not -0.000 (format's "z" is 3.11+)
    return text.replace("-", "+" if signed else "", 1) if text.startswith("-") and not text.strip("-0.") else text


def p_text(p: float | None, eq: bool = False) -> str:
    """`0.012`, or `<0.001`; with eq, `=0.012` / `<0.001` to follow a name."""
    if p is None:
        return "=—" if eq else "—"
    return "<0.001" if p < 1e-3 else f"{'=' if eq else ''}{p:.3f}"


def _interval(lo: float | None, hi: float | None, key: str, signed: bool = False) -> str:
    return f" [{num(lo, key, signed)}, {num(hi, key, signed)}]" if lo is not None and hi is not None else ""


def _symmetric(c: float, lo: float, hi: float) -> bool:
    return abs((hi - c) - (c - lo)) <= 1e-9 * max(1.0, abs(c), abs(hi - lo))


def stat_cell(s: dict[str, Any], key: str, group_n: int, long: bool, stat: str = "welch") -> str:
    """welch: `0.512 ±0.031` (terminal; [lo, hi] when clipping made it lopsided) or
    `0.512 [0.481, 0.543]` (reports). bootstrap: the IQM with its interval, `(min–max)` when it
    is the runs' range (n = 2). `(n=2)` if seeds are missing."""
    if s["mean"] is None:
        return "not reached" if key in ROUND_KEYS else "—"
    if stat == "bootstrap" and s.get("iqm") is not None:
        text = num(s["iqm"], key) + _interval(s.get("iqm_lo"), s.get("iqm_hi"), key)
        text += " (min–max)" if s.get("iqm_method") == "min-max" else ""
    else:
        text = num(s["mean"], key)
        if s["lo"] is not None:
            short = not long and _symmetric(s["mean"], s["lo"], s["hi"])
            text += f" ±{num((s['hi'] - s['lo']) / 2, key)}" if short else _interval(s["lo"], s["hi"], key)
    return text + (f" (n={s['n']})" if s["n"] != group_n else "")


def _poi(d: dict[str, Any]) -> str:
    return f"PoI={d['poi']:.2f}" if d.get("poi") is not None else ""


def diff_cell(d: dict[str, Any] | None, key: str, long: bool, stat: str = "welch") -> str:
    """Difference vs baseline with its interval, probability of improvement and Welch's
    Holm-adjusted p (or why no test). welch leads with the difference of means and its Welch
    interval (+ Hedges' g), bootstrap with the IQM difference and its stratified bootstrap interval."""
    if not d or d["diff"] is None:
        return "not reached" if key in ROUND_KEYS and d and d["n_baseline"] + d["n"] else "—"
    note = d.get("note") or ""
    if stat == "bootstrap" and d.get("iqm_diff") is not None:
        text = num(d["iqm_diff"], key, signed=True) + _interval(d.get("iqm_lo"), d.get("iqm_hi"), key, True)
        text += " (min–max)" if d.get("iqm_method") == "min-max" else ""
        welch = (f"Welch p{p_text(d['p'], eq=True)}, Holm p{p_text(d['p_holm'], eq=True)}" if long
                 else f"p_holm{p_text(d['p_holm'], eq=True)}") if d["p"] is not None else f"{note.split(':')[0]}: no test"
        return f"{text}, {_poi(d)}, {welch}" if long else f"{text}\n{_poi(d)}, {welch}"
    text = num(d["diff"], key, signed=True)
    if d["lo"] is not None and d["p"] is not None:
        short = not long and _symmetric(d["diff"], d["lo"], d["hi"])
        text += f" ±{num((d['hi'] - d['lo']) / 2, key)}" if short else _interval(d["lo"], d["hi"], key, True)
    poi = f", {_poi(d)}" if _poi(d) else ""
    if d["p"] is None:
        return (f"{text} ({note}){poi}" if long else f"{text}\n{note.split(':')[0]}: no test") if note else text
    g = f", g={d['g']:+.2f}" if d.get("g") is not None else ""
    if long:
        return f"{text}, p{p_text(d['p'], eq=True)}, Holm p{p_text(d['p_holm'], eq=True)}{g}{poi}"
    return f"{text}\np_holm{p_text(d['p_holm'], eq=True)}{g}"


def group_header(g: dict[str, Any]) -> str:
    return f"{g['name']} (n={g['n']}{', baseline' if g['baseline'] else ''})"


# ----------------------------------------------------------------------------- tables (plain text cells)


def metric_table(result: dict[str, Any], long: bool) -> tuple[list[str], list[list[str]]]:
    groups, stat = result["groups"], result.get("stat", "welch")
    head = ["metric"] + [group_header(g) for g in groups]
    rows = [[label(k)] + [stat_cell(g["metrics"][k], k, g["n"], long, stat) for g in groups]
            for k in shown_metrics(result)]
    return head, rows


def baseline_table(result: dict[str, Any], long: bool) -> tuple[list[str], list[list[str]]] | None:
    others = [g for g in result["groups"] if not g["baseline"]]
    if not result["baseline"] or not others:
        return None
    head = ["metric"] + [f"{g['name']} − {result['baseline']}" for g in others]
    stat = result.get("stat", "welch")
    rows = [[label(k)] + [diff_cell(g["vs_baseline"].get(k), k, long, stat) for g in others]
            for k in shown_metrics(result)]
    return head, rows


def law_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["group", "points", "law", "a", "b", "ceiling b−a [95 % CI]", "R²", "winning format (runs)"]
    rows = []
    for g in result["groups"]:
        law, w = g["law"], g["winner"]
        ci = law["ceiling_ci"] if law["ceiling_ci"] else [None, None]
        ceiling = (f"{num(law['ceiling'])} [{num(ci[0])}, {num(ci[1])}]" if law["error"] is None
                   else f"no fit: {law['error']}")
        eq = law_text(law["a"], law["b"]) if law["error"] is None else "—"
        rows.append([g["name"], str(law["n"]), eq, num(law["a"]), num(law["b"]), ceiling, num(law["r2"]),
                     f"{w['format']} ({w['runs']}/{g['n']})" if w else "—"])
    return head, rows


def runs_table(result: dict[str, Any], source: bool = False) -> tuple[list[str], list[list[str]]]:
    """Every run; with `source` also where it came from (format and path, provenance)."""
    head = ["run", "group", "status", "seed", "rounds", "in statistics"] + (["from"] if source else [])
    rows = [[r["id"], r["group"], r["status"], str(r["seed"]), str(r["rounds"]),
             "yes" if r["included"] else f"no: {r['excluded_because']}" + (f" ({r['error']})" if r["error"] else "")]
            + ([source_text(r)] if source else []) for r in result["runs"]]
    return head, rows


def source_text(run: dict[str, Any]) -> str:
    """`TRL trainer_state.json: logs/a/trainer_state.json (entropy/seqmean ← entropy, ...)`."""
    src = run.get("source") or {}
    keys = ", ".join(f"{ours} ← {theirs}" for ours, theirs in (src.get("keys") or {}).items())
    return f"{src.get('format', 'entropyctl run')}: {src.get('path') or run['path']}" + (f" ({keys})" if keys else "")


def shown_metrics(result: dict[str, Any]) -> list[str]:
    """Metrics at least one group has a value for (pass@k only where logged)."""
    return [k for k in result["metrics"] if any(g["metrics"][k]["n"] for g in result["groups"])]


# ----------------------------------------------------------------------------- markdown and html

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")  # inline syntax; cells and headings never start a line


def esc(text: Any) -> str:
    """HTML-inert and visible."""
    return html.escape(visible(text))


def md_escape(text: str) -> str:
    """Markdown- and HTML-inert text for a table cell: `& < >` as entities (every renderer
    honours them, not every one honours a backslash before `<`), markdown syntax backslashed,
    control characters spelled out."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(visible(text), quote=False)).replace("\n", " ")


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    line = lambda cells: "| " + " | ".join(md_escape(c) for c in cells) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "---|" * len(head)] + [line(r) for r in rows]) + "\n"


def _sections(result: dict[str, Any]) -> list[tuple[str, str, tuple[list[str], list[list[str]]] | None]]:
    """(title, intro, table) in report order; the same content for markdown and HTML."""
    base = result["baseline"]
    out: list[tuple[str, str, tuple[list[str], list[list[str]]] | None]] = [
        ("How to read this", how_to_read(result), None),
        (f"Groups by {result['by']}", groups_intro(result), metric_table(result, long=True))]
    table = baseline_table(result, long=True)
    if table:
        out.append((f"Against the baseline {base}", baseline_intro(result), table))
    else:
        out.append(("Against the baseline", " ".join(result["notes"]) or "only one group: nothing to test.", None))
    table = narrowing_table(result, long=True)
    if table:
        out.append(("Collapse or convergence?", NARROWING_INTRO, table))
    table = format_acc_table(result, num)
    if table:
        out.append(("Accuracy per answer format", "Final format/acc/<name> per group: the share of full-reward "
                    "responses among the responses written in that format (— where a group never used it).", table))
    out.append(("Fitted law and formats",
                "R = −a·exp(H) + b fitted on each group's pooled (entropy/seqmean, eval/acc) points, written with "
                "the signs the fit has (the per-seed ceilings are in the table above).", law_table(result)))
    table = samples_table(result)
    if table:
        out.append(("Sample completions", "A few completions of each group's last logged round (samples.jsonl), "
                    "shown as text.", table))
    out.append(("Runs", "Where each run came from, and whether it entered the statistics: runs that are not "
                "finished are listed and left out unless --include-incomplete was given.",
                runs_table(result, source=True)))
    return out


def render_markdown(result: dict[str, Any]) -> str:
    parts = ["# entropyctl compare\n"]
    for title, intro, table in _sections(result):
        parts.append(f"## {md_escape(title)}\n\n{intro}\n")  # intros are ours, titles may hold a group name
        if table:
            parts.append(_md_table(*table))
    parts.append("## Plots\n")
    for name, (title, what) in PLOTS.items():
        parts.append(f"### {title}\n\n{what}\n\n![{title}]({name})\n")
    parts.append("## Metrics\n")
    parts.append(_md_table(["metric", "key", "definition"], [[label(k), k, doc(k)] for k in result["metrics"]]))
    return "\n".join(parts)


_CSS = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:left;font-size:14px}th{background:#f4f4f4}img{max-width:100%}"
        "figure{margin:1em 0}figcaption{color:#555;font-size:13px}")


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    e = esc
    th = "".join(f"<th>{e(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>\n"


def render_html(result: dict[str, Any], plots: dict[str, bytes]) -> str:
    """One self-contained, well-formed page (also parses as XML): PNGs inlined as data URIs."""
    e = esc
    parts = ['<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/>',
             f"<title>entropyctl compare</title><style>{_CSS}</style></head><body>",
             "<h1>entropyctl compare</h1>"]
    for title, intro, table in _sections(result):
        parts.append(f"<h2>{e(title)}</h2><p>{e(intro)}</p>")
        if table:
            parts.append(_html_table(*table))
    parts.append("<h2>Plots</h2>")
    for name, (title, what) in PLOTS.items():
        data = base64.b64encode(plots[name]).decode("ascii")
        parts.append(f'<figure id="{e(name)}"><img alt="{e(title)}" src="data:image/png;base64,{data}"/>'
                     f"<figcaption><b>{e(title)}</b>: {e(what)}</figcaption></figure>")
    parts.append("<h2>Metrics</h2>")
    parts.append(_html_table(["metric", "key", "definition"], [[label(k), k, doc(k)] for k in result["metrics"]]))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def build_report(result: dict[str, Any], runs: list[RunInput]) -> dict[str, bytes]:
    """{file name: content} for the output folder: plots, report.md, report.html, compare.json."""
    from entropyctl.analysis.report_plots import render_plots

    plots = render_plots(result, runs)
    return {**plots,
            "report.md": render_markdown(result).encode(),
            "report.html": render_html(result, plots).encode(),
            "compare.json": to_json(result).encode()}
