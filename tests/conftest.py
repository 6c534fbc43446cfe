"""Shared fixtures. Everything is real: files in tmp_path, real torch, real Hydra."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _two_threads():
    # Tests run on 2-core CI machines: more threads than cores only adds contention.
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def smoke_runs_dir(tmp_path_factory) -> Path:
    """A runs folder whose smoke base model is pretrained once per session."""
    return tmp_path_factory.mktemp("runs")
