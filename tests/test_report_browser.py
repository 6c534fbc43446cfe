"""The compare report as a person sees it: report.html from fabricated runs (no training), opened
in headless Chromium, screenshot checked (right size, not blank, the plots drawn). Skipped with the
reason when no Chromium is installed; CI does not require one."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from entropyctl.cli.main import app
from entropyctl.runstore.store import create_run
from tests.test_report import lab_rows

WIDTH, HEIGHT = 1280, 2000


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for name, decay in (("grpo", 0.3), ("clip_cov", 0.05)):
        for seed in range(3):
            w = create_run(root, "sw", f"{name}-{seed}", f"seed: {seed}\n", [], {"intervention": name, "seed": seed})
            w.append(*lab_rows(decay + 0.02 * seed, n=20))
            w.finish("finished")
            w.close()
    res = CliRunner().invoke(app, ["compare", str(root / "sw"), "--json"])
    assert res.exit_code == 0, res.output
    return root / "sw" / "compare" / "report.html"


def screenshot(browser: str, page: Path, out: Path, profile: Path) -> np.ndarray:
    """Headless Chromium's screenshot of `page` at WIDTH x HEIGHT, as floats in [0, 1] (H x W x 3)."""
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={profile}", f"--screenshot={out}", f"--window-size={WIDTH},{HEIGHT}",
           page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert out.is_file(), f"no screenshot (exit {proc.returncode}): {proc.stderr[-1500:]}"
    from matplotlib import image

    pixels = image.imread(out)
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    return pixels[..., :3]


def test_report_renders_in_headless_chromium(report_html: Path, tmp_path: Path):
    browser = chromium()
    if browser is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium, or any chromium/google-chrome "
                    "on PATH); the report's HTML is still checked by tests/test_report.py")
    rgb = screenshot(browser, report_html, tmp_path / "report.png", tmp_path / "profile")
    grey = rgb.mean(axis=2)
    assert grey.std() > 0.05, "a blank page"
    not_white = (grey < 0.95).mean()
    assert 0.01 < not_white < 0.9, f"{not_white:.1%} of the page is not white"
    rows_with_ink = np.flatnonzero((grey < 0.5).any(axis=1))
    assert rows_with_ink.size and rows_with_ink[0] < 300, "nothing near the top: the page did not render"

    # the embedded plots decode and draw in a browser: the first figure alone, on its own page
    # (the report's tables may push the plots below the first screen)
    text = report_html.read_text()
    figure = re.search(r"<figure.*?</figure>", text, re.S)
    assert figure, "no figure in the report"
    alone = tmp_path / "figure.html"
    alone.write_text(f"<!DOCTYPE html><html><body>{figure.group(0)}</body></html>")
    rgb = screenshot(browser, alone, tmp_path / "figure.png", tmp_path / "profile2")
    colour = (rgb.max(axis=2) - rgb.min(axis=2)) > 0.25  # the curves; text and axes are black and grey
    assert colour.mean() > 0.001, "no coloured pixels: the embedded plot did not render"
