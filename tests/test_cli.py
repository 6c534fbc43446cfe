"""The CLI surface: --help is instant and lists the commands, --version, train's Hydra help."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from entropyctl import __version__
from entropyctl.cli.main import app

runner = CliRunner()


def test_version():
    out = runner.invoke(app, ["--version"])
    assert out.exit_code == 0 and out.stdout.strip() == f"entropyctl {__version__}"


def test_help_lists_the_commands():
    out = runner.invoke(app, ["--help"])
    assert out.exit_code == 0
    for cmd in ("train", "fit-law", "compare", "pretrain"):
        assert cmd in out.stdout


def test_help_does_not_import_torch():
    code = "import sys; from entropyctl.cli.main import app; assert 'torch' not in sys.modules, 'torch imported'"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "entropyctl", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout


def test_train_help_shows_hydra_config_groups():
    out = subprocess.run([sys.executable, "-m", "entropyctl", "train", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for group in ("intervention:", "model:", "experiment:"):
        assert group in out.stdout
    assert "clip_cov" in out.stdout and "smoke" in out.stdout
