"""The PNG plots of the compare report (matplotlib, Agg canvas, no pyplot state; imported only
when a report is built, so `entropyctl --help` stays cheap).

Bounded at any number of runs: a curve is one mean line and one band per group (never a line
per run), the law's scatter keeps at most MAX_POINTS points per group. Bands are the percentile
bootstrap interval of the mean across seeds where >= 3 runs logged a round and the min-max where
2 did (the legend says which); the numbers come from compare.band / stats.curve_band.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from entropyctl.analysis.compare import DOM_Q, LEVEL, SHARE_PREFIX, RunInput, band, format_shares, law_points
from entropyctl.analysis.verdict import CKA_PREFIX
from entropyctl.runstore.glossary import DEFAULT_ENTROPY_KEY, PER_RESPONSE_ENTROPY_KEY

MAX_POINTS = 3000  # law.png scatter points per group (a fixed subsample beyond)
BAND_TEXT = ("mean line; band = 95 % bootstrap interval of the mean across seeds (min–max where only "
             "2 seeds logged the round, labelled so)")

# file name -> (title, what the reader should look at)
PLOTS: dict[str, tuple[str, str]] = {
    "entropy.png": ("Entropy vs round", f"entropy/seqmean per group: {BAND_TEXT}"),
    "reward.png": ("Reward vs round", f"reward/mean per group: {BAND_TEXT}"),
    "law.png": ("R vs H with each group's fitted law",
                "eval/acc against entropy/seqmean, one point per logged round; line = the law fitted on the "
                "group's pooled points (legend: its equation), dashed down to H = 0 where it reaches the "
                "ceiling b - a"),
    "formats.png": ("Format shares over rounds", "mean share of each answer format per group"),
    "collapse.png": ("Entropy collapse or format convergence?",
                     "left: per-response entropy (entropy/seqsum); right: entropy of the format distribution "
                     "(format/entropy); third: CKA of the deepest probed layer to the base (repr/cka/layer<i>). "
                     "Left falls, middle stays: the policy lost spread inside its formats "
                     "(entropy collapse). Middle falls to 0: it committed to one format (convergence); CKA "
                     "falling says the representation moved with it. Both: both."),
}
Groups = dict[str, list[RunInput]]


def law_text(a: float, b: float) -> str:
    """R = −a·exp(H) + b written with the signs it has: a = 0.141 gives 'R = −0.141·exp(H) + 0.8',
    a = −0.141 gives 'R = 0.141·exp(H) + 0.8' (never '--0.141'), a negative b '… − 0.2'."""
    slope = -a
    head = f"{'−' if slope < 0 else ''}{abs(slope):.3g}·exp(H)"
    return f"R = {head} {'−' if b < 0 else '+'} {abs(b):.3g}"


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
        # fixed margins: tight_layout measured every text and took a third of the report's time
        rows = len({ax.get_subplotspec().rowspan.start for ax in fig.axes if ax.get_subplotspec()})
        fig.subplots_adjust(left=0.1 if name != "collapse.png" else 0.05, right=0.98, bottom=0.13 / max(1, rows) ** 0.5,
                            top=0.9 - 0.02 * rows, wspace=0.3, hspace=0.5)
        FigureCanvasAgg(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        out[name] = buf.getvalue()
    return out


def _band_label(n: np.ndarray) -> str:
    """What the band of a group is, from how many runs logged each round."""
    most = int(n.max()) if n.size else 0
    if most >= 3:
        return f"n={most}, band: bootstrap 95 %"
    return f"n={most}, band: min–max" if most == 2 else f"n={most}, no band"


def _curves(ax: Any, by_group: Groups, colors: dict[str, str], key: str, ylabel: str) -> None:
    """Mean line and band across each group's seeds, rounds aligned."""
    drawn = False
    for name, members in by_group.items():
        logged = [xy for xy in (r.cols.get_xy(key) for r in members) if xy[1].size]
        if not logged:
            continue
        x, mean, lo, hi, n = band(logged, LEVEL)
        ax.plot(x, mean, color=colors[name], label=f"{_plain(name)} ({_band_label(n)})")
        ax.fill_between(x, lo, hi, color=colors[name], alpha=0.2, linewidth=0)
        drawn = True
    _finish(ax, "round", ylabel, drawn, key)


def _law(ax: Any, by_group: Groups, colors: dict[str, str], laws: dict[str, Any]) -> None:
    """Points (H, R) per group and its pooled law, dashed from the data down to H = 0."""
    drawn = False
    rng = np.random.default_rng(0)
    for name, members in by_group.items():
        pts = [law_points(r) for r in members]
        H = np.concatenate([p[0] for p in pts] or [np.zeros(0)])
        R = np.concatenate([p[1] for p in pts] or [np.zeros(0)])
        if not H.size:
            continue
        shown = np.sort(rng.choice(H.size, MAX_POINTS, replace=False)) if H.size > MAX_POINTS else slice(None)
        ax.scatter(H[shown], R[shown], s=8, alpha=0.4, color=colors[name])
        law = laws[name]
        if law["error"] is None:
            hs = np.linspace(H.min(), H.max(), 50)
            ax.plot(hs, law["b"] - law["a"] * np.exp(hs), color=colors[name],
                    label=f"{_plain(name)}: {law_text(law['a'], law['b'])}")
            h0 = np.linspace(0.0, H.min(), 20)
            ax.plot(h0, law["b"] - law["a"] * np.exp(h0), color=colors[name], linestyle="--")
        else:
            ax.plot([], [], color=colors[name], label=f"{_plain(name)}: no fit")
        drawn = True
    _finish(ax, "H = entropy/seqmean (nats)", "R = eval/acc", drawn, "eval/acc and entropy/seqmean")


def _formats(fig: Any, by_group: Groups, ncols: int) -> None:
    """One panel per group: mean format shares stacked over rounds, dotted line at t_dom's q."""
    axes = fig.subplots(max(1, math.ceil(len(by_group) / ncols)), ncols, squeeze=False).ravel()
    all_fmts = list(dict.fromkeys(f for m in by_group.values() for r in m for f in format_shares(r.cols)))
    fmt_color = {f: f"C{i % 10}" for i, f in enumerate(all_fmts)}  # one colour per format in every panel
    for ax, (name, members) in zip(axes, by_group.items()):
        layers = []
        for f in dict.fromkeys(f for r in members for f in format_shares(r.cols)):
            logged = [xy for xy in (r.cols.get_xy(SHARE_PREFIX + f) for r in members) if xy[1].size]
            x, mean, *_ = band(logged, n_boot=0)  # stacked means: no band to draw
            layers.append((f, x, mean))
        if layers:
            x = layers[0][1]
            ys = [np.interp(x, lx, ly) for _, lx, ly in layers]  # align formats logged on different rounds
            ax.stackplot(x, *ys, labels=[_plain(f) for f, _, _ in layers],
                         colors=[fmt_color[f] for f, _, _ in layers], alpha=0.85)
            ax.axhline(DOM_Q, color="k", linewidth=0.6, linestyle=":")
            ax.set_ylim(0, 1)
        _finish(ax, "round", "share", bool(layers), "format/share/*")
        ax.set_title(_plain(name), fontsize=10)
    for ax in axes[len(by_group):]:
        ax.set_visible(False)


def _collapse(fig: Any, by_group: Groups, colors: dict[str, str]) -> None:
    """Per-response entropy next to format entropy: lost spread, committed to a format, or both."""
    left, right, third = fig.subplots(1, 3, sharex=True)
    _curves(left, by_group, colors, PER_RESPONSE_ENTROPY_KEY, "per-response entropy (nats)")
    left.set_title("policy spread: entropy/seqsum", fontsize=10)
    _curves(right, by_group, colors, "format/entropy", "format entropy (nats)")
    right.set_title("format choice: format/entropy", fontsize=10)
    n_fmt = max((len(format_shares(r.cols)) for m in by_group.values() for r in m), default=0)
    if n_fmt > 1:
        right.axhline(math.log(n_fmt), color="grey", linestyle="--", linewidth=0.8)
        right.annotate(f"uniform over {n_fmt} formats", (0.02, math.log(n_fmt)),
                       xycoords=("axes fraction", "data"), fontsize=8, va="bottom", color="grey")
    layers = {int(k.removeprefix(CKA_PREFIX)) for m in by_group.values() for r in m for k in r.cols
              if k.startswith(CKA_PREFIX) and k.removeprefix(CKA_PREFIX).isdigit()}
    key = f"{CKA_PREFIX}{max(layers)}" if layers else f"{CKA_PREFIX}<i>"
    _curves(third, by_group, colors, key, "CKA to the base")
    third.set_title(f"representation: {key}", fontsize=10)


def visible(text: Any) -> str:
    """Control characters (an escape byte in a run name) spelled out as \\xNN, never raw: a
    report must not drive the terminal or the renderer that shows it."""
    text = str(text)
    if text.isprintable():  # the common case, checked in C: thousands of cells at 1,000 runs
        return text
    return "".join(c if c.isprintable() or c == "\n" else f"\\x{ord(c):02x}" if ord(c) < 256
                   else f"\\u{ord(c):04x}" for c in text)


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
