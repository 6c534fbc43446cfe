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
import io
import math
import re
from typing import Any

import numpy as np

from entropyctl.analysis.compare import (
    DOM_Q, LEVEL, METRICS, PASS_PREFIX, SHARE_PREFIX, RunInput, band, format_shares, law_points, to_json,
)
from entropyctl.analysis.verdict import CKA_PREFIX, INTRO as NARROWING_INTRO, narrowing_table
from entropyctl.runstore.glossary import DEFAULT_ENTROPY_KEY, PER_RESPONSE_ENTROPY_KEY
from entropyctl.runstore.store import series

# file name -> (title, what the reader should look at)
PLOTS: dict[str, tuple[str, str]] = {
    "entropy.png": ("Entropy vs round", "entropy/seqmean per group: mean line, band = 95 % interval across seeds"),
    "reward.png": ("Reward vs round", "reward/mean per group: mean line, band = 95 % interval across seeds"),
    "law.png": ("R vs H with each group's fitted law",
                "eval/acc against entropy/seqmean, one point per logged round; line = R = -a exp(H) + b "
                "fitted on the group's pooled points, dashed down to H = 0 where it reaches the ceiling b - a"),
    "formats.png": ("Format shares over rounds", "mean share of each answer format per group"),
    "collapse.png": ("Entropy collapse or format convergence?",
                     "left: per-response entropy (entropy/seqsum); right: entropy of the format distribution "
                     "(format/entropy); third: CKA of the deepest probed layer to the base (repr/cka/layer<i>). "
                     "Left falls, middle stays: the policy lost spread inside its formats "
                     "(entropy collapse). Middle falls to 0: it committed to one format (convergence); CKA "
                     "falling says the representation moved with it. Both: both."),
}
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
    if key in ROUND_KEYS:
        return f"{v:{sign}.1f}"
    a = abs(v)
    return f"{v:{sign}.0f}" if a >= 100 else f"{v:{sign}.1f}" if a >= 10 else f"{v:{sign}.3f}"


def p_text(p: float | None, eq: bool = False) -> str:
    """`0.012`, or `<0.001`; with eq, `=0.012` / `<0.001` to follow a name."""
    if p is None:
        return "=—" if eq else "—"
    return "<0.001" if p < 1e-3 else f"{'=' if eq else ''}{p:.3f}"


def stat_cell(s: dict[str, Any], key: str, group_n: int, long: bool) -> str:
    """`0.512 ±0.031` (terminal) or `0.512 [0.481, 0.543]` (reports); `(n=2)` if seeds are missing."""
    if s["mean"] is None:
        return "not reached" if key in ROUND_KEYS else "—"
    text = num(s["mean"], key)
    if s["lo"] is not None:
        text += f" [{num(s['lo'], key)}, {num(s['hi'], key)}]" if long else f" ±{num((s['hi'] - s['lo']) / 2, key)}"
    return text + (f" (n={s['n']})" if s["n"] != group_n else "")


def diff_cell(d: dict[str, Any] | None, key: str, long: bool) -> str:
    """Difference vs baseline with its interval, Holm-adjusted p and Hedges' g (or why no test)."""
    if not d or d["diff"] is None:
        return "not reached" if key in ROUND_KEYS and d and d["n_baseline"] + d["n"] else "—"
    text = num(d["diff"], key, signed=True)
    if d["lo"] is not None and d["p"] is not None:
        text += (f" [{num(d['lo'], key, True)}, {num(d['hi'], key, True)}]" if long
                 else f" ±{num((d['hi'] - d['lo']) / 2, key)}")
    if d["p"] is None:
        note = d.get("note") or ""
        return (f"{text} ({note})" if long else f"{text}\n{note.split(':')[0]}: no test") if note else text
    g = f", g={d['g']:+.2f}" if d.get("g") is not None else ""
    if long:
        return f"{text}, p{p_text(d['p'], eq=True)}, Holm p{p_text(d['p_holm'], eq=True)}{g}"
    return f"{text}\np_holm{p_text(d['p_holm'], eq=True)}{g}"


def group_header(g: dict[str, Any]) -> str:
    return f"{g['name']} (n={g['n']}{', baseline' if g['baseline'] else ''})"


# ----------------------------------------------------------------------------- tables (plain text cells)


def metric_table(result: dict[str, Any], long: bool) -> tuple[list[str], list[list[str]]]:
    groups = result["groups"]
    head = ["metric"] + [group_header(g) for g in groups]
    rows = [[label(k)] + [stat_cell(g["metrics"][k], k, g["n"], long) for g in groups]
            for k in shown_metrics(result)]
    return head, rows


def baseline_table(result: dict[str, Any], long: bool) -> tuple[list[str], list[list[str]]] | None:
    others = [g for g in result["groups"] if not g["baseline"]]
    if not result["baseline"] or not others:
        return None
    head = ["metric"] + [f"{g['name']} − {result['baseline']}" for g in others]
    rows = [[label(k)] + [diff_cell(g["vs_baseline"].get(k), k, long) for g in others]
            for k in shown_metrics(result)]
    return head, rows


def law_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["group", "points", "a", "b", "ceiling b−a [95 % CI]", "R²", "winning format (runs)"]
    rows = []
    for g in result["groups"]:
        law, w = g["law"], g["winner"]
        ci = law["ceiling_ci"] if law["ceiling_ci"] else [None, None]
        ceiling = (f"{num(law['ceiling'])} [{num(ci[0])}, {num(ci[1])}]" if law["error"] is None
                   else f"no fit: {law['error']}")
        rows.append([g["name"], str(law["n"]), num(law["a"]), num(law["b"]), ceiling, num(law["r2"]),
                     f"{w['format']} ({w['runs']}/{g['n']})" if w else "—"])
    return head, rows


def runs_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["run", "group", "status", "seed", "rounds", "in statistics"]
    rows = [[r["id"], r["group"], r["status"], str(r["seed"]), str(r["rounds"]),
             "yes" if r["included"] else f"no: {r['excluded_because']}" + (f" ({r['error']})" if r["error"] else "")]
            for r in result["runs"]]
    return head, rows


def shown_metrics(result: dict[str, Any]) -> list[str]:
    """Metrics at least one group has a value for (pass@k only where logged)."""
    return [k for k in result["metrics"] if any(g["metrics"][k]["n"] for g in result["groups"])]


# ----------------------------------------------------------------------------- plots


def render_plots(result: dict[str, Any], runs: list[RunInput]) -> dict[str, bytes]:
    """Every plot in PLOTS as PNG bytes, from the runs that entered the statistics."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    kept = {(r["id"], r["path"]) for r in result["runs"] if r["included"]}
    names = [g["name"] for g in result["groups"]]
    by_group = {n: [r for r in runs if r.group == n and (r.id, r.path) in kept] for n in names}
    colors = {n: f"C{i % 10}" for i, n in enumerate(names)}
    laws = {g["name"]: g["law"] for g in result["groups"]}
    ncols = max(1, min(3, len(names)))
    figures = {
        "entropy.png": Figure(figsize=(6.4, 4)), "reward.png": Figure(figsize=(6.4, 4)),
        "law.png": Figure(figsize=(6.4, 4)), "collapse.png": Figure(figsize=(15, 4)),
        "formats.png": Figure(figsize=(4 * ncols, 3.2 * max(1, math.ceil(len(names) / ncols)))),
    }
    _curves(figures["entropy.png"].subplots(), by_group, colors, DEFAULT_ENTROPY_KEY, "entropy/seqmean (nats)")
    _curves(figures["reward.png"].subplots(), by_group, colors, "reward/mean", "reward/mean")
    _law(figures["law.png"].subplots(), by_group, colors, laws)
    _formats(figures["formats.png"], by_group, ncols)
    _collapse(figures["collapse.png"], by_group, colors)
    out = {}
    for name, fig in figures.items():
        fig.suptitle(PLOTS[name][0])
        fig.tight_layout()
        FigureCanvasAgg(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        out[name] = buf.getvalue()
    return out


Groups = dict[str, list[RunInput]]


def _curves(ax: Any, by_group: Groups, colors: dict[str, str], key: str, ylabel: str) -> None:
    """Mean line and 95 % band across each group's seeds, rounds aligned."""
    drawn = False
    for n, members in by_group.items():
        logged = [c for c in (series(r.rows, key) for r in members) if c[1]]
        if not logged:
            continue
        x, mean, lo, hi = band(logged, LEVEL)
        ax.plot(x, mean, color=colors[n], label=f"{_plain(n)} (n={len(logged)})")
        ax.fill_between(x, lo, hi, color=colors[n], alpha=0.2, linewidth=0)
        drawn = True
    _finish(ax, "round", ylabel, drawn, key)


def _law(ax: Any, by_group: Groups, colors: dict[str, str], laws: dict[str, Any]) -> None:
    """Points (H, R) per group and its pooled law, dashed from the data down to H = 0."""
    drawn = False
    for n, members in by_group.items():
        pts = [law_points(r.rows) for r in members]
        H = [h for p in pts for h in p[0]]
        R = [v for p in pts for v in p[1]]
        if not H:
            continue
        ax.scatter(H, R, s=8, alpha=0.4, color=colors[n])
        law = laws[n]
        if law["error"] is None:
            hs = np.linspace(min(H), max(H), 50)
            ax.plot(hs, law["b"] - law["a"] * np.exp(hs), color=colors[n],
                    label=f"{_plain(n)}: R = -{law['a']:.3g}·exp(H) + {law['b']:.3g}")
            h0 = np.linspace(0.0, min(H), 20)
            ax.plot(h0, law["b"] - law["a"] * np.exp(h0), color=colors[n], linestyle="--")
        else:
            ax.plot([], [], color=colors[n], label=f"{_plain(n)}: no fit")
        drawn = True
    _finish(ax, "H = entropy/seqmean (nats)", "R = eval/acc", drawn, "eval/acc and entropy/seqmean")


def _formats(fig: Any, by_group: Groups, ncols: int) -> None:
    """One panel per group: mean format shares stacked over rounds, dotted line at t_dom's q."""
    axes = fig.subplots(max(1, math.ceil(len(by_group) / ncols)), ncols, squeeze=False).ravel()
    all_fmts = list(dict.fromkeys(f for m in by_group.values() for r in m for f in format_shares(r.rows)))
    fmt_color = {f: f"C{i % 10}" for i, f in enumerate(all_fmts)}  # one colour per format in every panel
    for ax, (n, members) in zip(axes, by_group.items()):
        layers = []
        for f in dict.fromkeys(f for r in members for f in format_shares(r.rows)):
            x, mean, _, _ = band([c for c in (series(r.rows, SHARE_PREFIX + f) for r in members) if c[1]], LEVEL)
            layers.append((f, x, mean))
        if layers:
            x = layers[0][1]
            ys = [np.interp(x, lx, ly) for _, lx, ly in layers]  # align formats logged on different rounds
            ax.stackplot(x, *ys, labels=[_plain(f) for f, _, _ in layers],
                         colors=[fmt_color[f] for f, _, _ in layers], alpha=0.85)
            ax.axhline(DOM_Q, color="k", linewidth=0.6, linestyle=":")
            ax.set_ylim(0, 1)
        _finish(ax, "round", "share", bool(layers), "format/share/*")
        ax.set_title(_plain(n), fontsize=10)
    for ax in axes[len(by_group):]:
        ax.set_visible(False)


def _collapse(fig: Any, by_group: Groups, colors: dict[str, str]) -> None:
    """Per-response entropy next to format entropy: lost spread, committed to a format, or both."""
    left, right, third = fig.subplots(1, 3, sharex=True)
    _curves(left, by_group, colors, PER_RESPONSE_ENTROPY_KEY, "per-response entropy (nats)")
    left.set_title("policy spread: entropy/seqsum", fontsize=10)
    _curves(right, by_group, colors, "format/entropy", "format entropy (nats)")
    right.set_title("format choice: format/entropy", fontsize=10)
    n_fmt = max((len(format_shares(r.rows)) for m in by_group.values() for r in m), default=0)
    if n_fmt > 1:
        right.axhline(math.log(n_fmt), color="grey", linestyle="--", linewidth=0.8)
        right.annotate(f"uniform over {n_fmt} formats", (0.02, math.log(n_fmt)),
                       xycoords=("axes fraction", "data"), fontsize=8, va="bottom", color="grey")
    layers = [int(k.removeprefix(CKA_PREFIX)) for m in by_group.values() for r in m for row in r.rows
              for k in row if k.startswith(CKA_PREFIX) and k.removeprefix(CKA_PREFIX).isdigit()]
    key = f"{CKA_PREFIX}{max(layers)}" if layers else f"{CKA_PREFIX}<i>"
    _curves(third, by_group, colors, key, "CKA to the base")
    third.set_title(f"representation: {key}", fontsize=10)


def _plain(text: str) -> str:
    """A run text as a literal matplotlib label: no mathtext ($), not hidden by a leading _."""
    text = visible(text).replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def _finish(ax: Any, xlabel: str, ylabel: str, drawn: bool, what: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if drawn:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, f"{what}: not logged", ha="center", va="center", transform=ax.transAxes)


# ----------------------------------------------------------------------------- markdown and html

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")  # inline syntax; cells and headings never start a line


def visible(text: Any) -> str:
    """Control characters (an escape byte in a run name) spelled out as \\xNN, never raw: a
    report must not drive the terminal or the renderer that shows it."""
    return "".join(c if c.isprintable() or c == "\n" else f"\\x{ord(c):02x}" if ord(c) < 256
                   else f"\\u{ord(c):04x}" for c in str(text))


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
    k = result["last_k"]
    base = result["baseline"]
    out = [(f"Groups by {result['by']}",
            f"Mean across seeds with its {LEVEL:.0%} t-interval; 'final' values are the mean of the last {k} "
            "logged values of each run; (n=…) where fewer seeds logged the metric.",
            metric_table(result, long=True))]
    table = baseline_table(result, long=True)
    if table:
        out.append((f"Against the baseline {base}",
                    "Difference of means with the Welch–Satterthwaite interval, Welch's t-test p, Holm-adjusted "
                    "p across the groups on each metric, Hedges' g.", table))
    else:
        out.append(("Against the baseline", " ".join(result["notes"]) or "only one group: nothing to test.", None))
    table = narrowing_table(result, long=True)
    if table:
        out.append(("Collapse or convergence?", NARROWING_INTRO, table))
    out.append(("Fitted law and formats",
                "R = -a·exp(H) + b fitted on each group's pooled (entropy/seqmean, eval/acc) points "
                "(the per-seed ceilings are in the table above).", law_table(result)))
    out.append(("Runs", "Runs that are not finished are listed and left out of the statistics "
                "unless --include-incomplete was given.", runs_table(result)))
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
    plots = render_plots(result, runs)
    return {**plots,
            "report.md": render_markdown(result).encode(),
            "report.html": render_html(result, plots).encode(),
            "compare.json": to_json(result).encode()}
