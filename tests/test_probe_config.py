"""probe.* settings are checked before any run directory exists: one line, exit code 2."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from entropyctl.cli.main import app


@pytest.mark.parametrize("override,says", [
    ("probe.every=-1", "probe.every=-1 is out of range"),
    ("probe.pass_k_max=0", "probe.pass_k_max=0 is out of range"),
    ("probe.kl_samples=9", "probe.kl_samples=9 exceeds probe.pass_k_max=8"),
    ("probe.repr_prompts=3", "probe.repr_prompts=3 is below 4"),
])
def test_bad_probe_settings_are_refused_in_one_line(tmp_path, override, says):
    extra = ["probe.pass_k_max=8"] if "kl_samples" in override else []
    out = CliRunner().invoke(app, ["train", "experiment=smoke", f"runs_dir={tmp_path}/runs", "progress=false",
                                   *extra, override])
    assert out.exit_code == 2, out.output
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0], out.output
    assert not (tmp_path / "runs").exists()
