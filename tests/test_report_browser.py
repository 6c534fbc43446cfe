"""report.html as a reader sees it: headless Chromium renders the page of a 3-seed compare and
takes a screenshot (kept next to the report for a human to look at). Skipped, with the reason,
where no Chromium is installed."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from typer.testing import CliRunner

from entropyctl.cli.main import app
from entropyctl.runstore.store import create_run

CHROMIUM = next((c for c in ("chromium", "chromium-browser", "google-chrome", "headless_shell") if shutil.which(c)),
                None)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH (chromium, chromium-browser, google-chrome)")
def test_report_renders_in_headless_chromium(tmp_path):
    for name, slope in (("grpo", 0.1), ("clip_cov", 0.05)):
        for seed in range(3):
            w = create_run(tmp_path, "sw", f"{name}__lab__s{seed}__t", yaml.safe_dump({}), [],
                           {"intervention": name, "seed": seed})
            for r in range(12):
                H = 1.0 - slope * r + 0.01 * seed
                w.append({"round": r, "reward/mean": 0.3 + 0.02 * r, "entropy/seqmean": H,
                          "eval/acc": 0.9 - 0.3 * 2.718 ** H, "format/share/a": 0.5, "format/share/b": 0.5})
            w.finish("finished")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["compare", str(tmp_path / "sw"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    shot = out / "screenshot.png"
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--screenshot={shot}", "--window-size=1280,2400", (out / "report.html").as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 50_000  # a rendered page, not a blank one
