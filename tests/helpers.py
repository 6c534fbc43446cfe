"""Helpers shared by tests: a tiny random lab model, and waiting on subprocess-driven runs
(resume, faults)."""

from __future__ import annotations

import time
from pathlib import Path


def wait_for_single_run(sweep_dir: Path, timeout: float = 120) -> Path:
    """The one run dir of `sweep_dir`, as soon as its run.json exists (polls: the run is a
    subprocess that may still be setting up)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        found = [p for p in sweep_dir.glob("*") if (p / "run.json").exists()] if sweep_dir.exists() else []
        if found:
            assert len(found) == 1, found
            return found[0]
        time.sleep(0.02)
    raise TimeoutError(sweep_dir)


def tiny_lab_model(layers: int = 1, seed: int = 0):
    """(tokenizer, model): a random lab Llama of hidden 32, in eval mode, seeded."""
    import torch

    from entropyctl.config import ModelConfig
    from entropyctl.lab.model import build_lab_model
    from entropyctl.lab.tokenizer import build_char_tokenizer

    torch.manual_seed(seed)
    tok = build_char_tokenizer()
    return tok, build_lab_model(ModelConfig(hidden=32, layers=layers, heads=2, ffn=64), tok).eval()
