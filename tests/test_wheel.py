"""A real package: the wheel carries conf/ and the plugin entry points, so an installed
entropyctl composes and runs the smoke preset from any directory, with no source tree around."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_installed_in_a_fresh_venv_runs_the_smoke_preset_from_anywhere(tmp_path):
    pip = [sys.executable, "-m", "pip"]
    # Built from a copy: setuptools leaves build/ behind in the tree it builds.
    src = tmp_path / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "runs", "build", "*.egg-info", "__pycache__", "bench-results", ".pytest_cache"))
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
                    str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("entropyctl-*.whl")
    # Every config group at any depth (hydra/launcher/slurm.yaml is three folders down).
    shipped = {n.removeprefix("entropyctl/") for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".yaml")}
    wanted = {str(p.relative_to(REPO)) for p in (REPO / "conf").rglob("*.yaml")}
    assert wanted and shipped == wanted, sorted(wanted ^ shipped)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    # The dependencies (torch & co.) come from this interpreter's site-packages through a plain
    # path entry: its .pth files (our editable install among them) are not processed, so the
    # only entropyctl the venv can import is the wheel's.
    purelib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([*pip, "--python", str(py), "install", "-q", "--no-deps", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([py, "-c", "import entropyctl; print(entropyctl.__file__)"], cwd=work,
                           capture_output=True, text=True, env=env, check=True).stdout.strip()
    assert where.startswith(purelib), where  # the wheel, not the source tree
    proc = subprocess.run([env_dir / "bin" / "entropyctl", "train", "experiment=smoke", "rounds=1",
                           "sweep=w", "progress=false"], cwd=work, capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (run,) = (work / "runs" / "w").iterdir()
    assert (run / "metrics.jsonl").read_text().count("\n") == 1
    assert "rounds: 1" in (run / "config.yaml").read_text()
