"""entropyctl.analysis.report: report.html parses, embeds every plot, escapes hostile run texts."""

from __future__ import annotations

import base64
import html
import json
import math
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from entropyctl.cli.compare import load_inputs
from entropyctl.analysis.compare import compare_runs
from entropyctl.analysis.report import PLOTS, build_report, md_escape, num
from entropyctl.runstore.store import create_run

HOSTILE_ID = '<script>alert("id")</script>'
HOSTILE_GROUP = "<img src=x onerror=alert(1)> $\\badmath{$"  # $ would be mathtext in a plot label
HOSTILE_ERROR = "</td></tr></table><script>alert('err')</script>"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def lab_rows(decay, n=12):
    """A run whose entropy decays and whose format share drifts to 'code'."""
    rows = []
    for r in range(n):
        H = 1.2 * math.exp(-decay * r)
        code = min(0.99, 0.5 + 0.5 * (1 - math.exp(-decay * 3 * r)))
        rows.append({"round": r, "reward/mean": 0.3 + 0.03 * r, "eval/acc": 0.9 - 0.2 * math.exp(H),
                     "entropy/seqmean": H, "entropy/seqsum": 30 * H, "format/share/code": code,
                     "format/share/prose": 1 - code, "format/entropy": -(code * math.log(code)
                                                                          + (1 - code) * math.log(1 - code))})
    return rows


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for i, (name, decay) in enumerate((("grpo", 0.3), (HOSTILE_GROUP, 0.05))):
        for seed in range(2):
            w = create_run(root, "sw", f"run{i}-{seed}", "{}\n", [],
                           {"intervention": name, "seed": seed})
            for row in lab_rows(decay + 0.01 * seed):
                w.append(row)
            w.finish("finished")
    w = create_run(root, "sw", "bad", "{}\n", [], {"intervention": "grpo", "seed": 7})
    w.append({"round": 0, "reward/mean": 0.1})
    w.update(id=HOSTILE_ID)  # run.json is the user's file: its id may be anything
    w.finish("diverged", error=HOSTILE_ERROR)
    runs = load_inputs([root / "sw"], None)
    result = compare_runs(runs, baseline=None, last_k=3, include_incomplete=False, by=None)
    return result, build_report(result, runs)


def test_report_has_every_file(report):
    _, files = report
    assert set(files) == set(PLOTS) | {"report.md", "report.html", "compare.json"}
    for name in PLOTS:
        assert files[name].startswith(PNG_MAGIC)
    assert json.loads(files["compare.json"])["baseline"] == "grpo"


def test_report_html_parses_and_embeds_every_plot(report):
    _, files = report
    page = files["report.html"].decode()
    root = ET.fromstring(page.removeprefix("<!DOCTYPE html>\n"))  # well-formed: parses as XML too
    assert root.tag == "html"
    imgs = {fig.get("id"): fig.find("img").get("src") for fig in root.iter("figure")}
    assert set(imgs) == set(PLOTS)
    for src in imgs.values():
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
    assert "src=\"http" not in page and "<link" not in page  # self-contained

    class Tags(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags = []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)

    p = Tags()
    p.feed(page)
    assert "script" not in p.tags and p.tags.count("img") == len(PLOTS)


def test_hostile_run_texts_are_escaped(report):
    _, files = report
    page = files["report.html"].decode()
    for text in (HOSTILE_ID, HOSTILE_GROUP, HOSTILE_ERROR):
        assert text not in page
    assert "&lt;script&gt;alert(&quot;id&quot;)&lt;/script&gt;" in page
    assert html.escape(HOSTILE_GROUP) in page
    root = ET.fromstring(page.removeprefix("<!DOCTYPE html>\n"))
    assert not list(root.iter("script"))
    cells = [td.text or "" for td in root.iter("td")]
    assert any(HOSTILE_ID == c for c in cells)  # shown as text, intact
    md = files["report.md"].decode()
    assert "<script>" not in md and "<img" not in md
    assert md_escape(HOSTILE_GROUP) in md


def test_report_md_has_tables_and_plots(report):
    result, files = report
    md = files["report.md"].decode()
    for name in PLOTS:
        assert f"]({name})" in md
    assert "## Against the baseline grpo" in md
    grpo = next(g for g in result["groups"] if g["name"] == "grpo")
    assert grpo["n"] == 2  # the diverged run is listed, not counted
    assert "no: status diverged" in md


@pytest.mark.parametrize("v, signed, text", [
    (-7.45e-10, False, "0.000"),  # a k3 KL to the base in float32 rounding: never "-0.000"
    (-7.45e-10, True, "+0.000"),
    (-0.0004, False, "0.000"),
    (-0.2, False, "-0.200"),  # a real negative keeps its sign
    (-0.0006, True, "-0.001"),
    (-150.2, True, "-150"),
    (12.34, True, "+12.3"),
])
def test_numbers_that_round_to_zero_lose_their_minus(v, signed, text):
    assert num(v, signed=signed) == text
