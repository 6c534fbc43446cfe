"""Checkpoints of a run, so a killed run resumes where it left off (docs/reliability.md).

    <run>/checkpoints/round-000010/    the state *before* round 10 (rounds 0..9 are done)
      model.safetensors                policy weights (safetensors: no pickle)
      optimizer.pt                     optimiser state_dict: tensors and numbers only
      rng.pt                           torch global RNG + the sampling generator (ByteTensors)
      state.json                       round, prompt RNG state, the interventions' controller
                                       state (JSON floats: exact), config hash, sha256 of each file

Writes are atomic: every file goes into a hidden `.round-N.tmp-<pid>/`, is fsynced, and the
folder is renamed into place, so a `round-*` folder is always complete; older ones are then
renamed away and deleted. Loads use safetensors and `torch.load(weights_only=True)` only, and
check each file's sha256, falling back to an older checkpoint when one is damaged.
"""

from __future__ import annotations

from entropyctl.errors import BadInput

import hashlib
import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

CKPT_DIR = "checkpoints"
FORMAT = 1
_FILES = ("model.safetensors", "optimizer.pt", "rng.pt")


class CheckpointError(BadInput):
    """A checkpoint that cannot be used, phrased for the user in one line."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def config_sha(config_yaml: str) -> str:
    return hashlib.sha256(config_yaml.encode()).hexdigest()


def _name(round_: int) -> str:
    return f"round-{round_:06d}"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / CKPT_DIR
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        if p.is_dir() and p.name.startswith("round-") and p.name[6:].isdigit():
            out.append((int(p.name[6:]), p))
    return sorted(out)


def _remove(path: Path) -> None:
    """Rename away first, then delete: a half-deleted folder never keeps a `round-*` name."""
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}")
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def save_checkpoint(run_dir: Path, round_: int, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    prompt_rng: random.Random, sample_gen: torch.Generator, config_yaml_sha: str,
                    keep: int, interventions: dict | None = None,
                    scaler: torch.amp.GradScaler | None = None) -> Path:
    """Write the state before round `round_` atomically; keep the newest `keep` checkpoints.
    `interventions` is `Pipeline.state_dict()`: the controllers' state; `scaler` float16's loss
    scale (its state is a few numbers: it goes in state.json)."""
    root = Path(run_dir) / CKPT_DIR
    root.mkdir(exist_ok=True)
    for stale in root.glob(".*"):  # temp or trash folders of a process killed mid-write
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".{_name(round_)}.tmp-{os.getpid()}"
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save({"torch": torch.get_rng_state(), "sample_gen": sample_gen.get_state()}, tmp / "rng.pt")
    version, internal, gauss_next = prompt_rng.getstate()
    state = {
        "format": FORMAT,
        "round": round_,
        "prompt_rng": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "interventions": interventions or {},
        "grad_scaler": scaler.state_dict() if scaler is not None else None,
        "config_sha256": config_yaml_sha,
        "sha256": {name: _sha256(tmp / name) for name in _FILES},
    }
    (tmp / "state.json").write_text(json.dumps(state) + "\n")
    for name in (*_FILES, "state.json"):
        _fsync(tmp / name)
    _fsync(tmp)
    final = root / _name(round_)
    if final.exists():  # a resumed run passing the same round again
        _remove(final)
    os.rename(tmp, final)
    _fsync(root)
    for _, old in list_checkpoints(run_dir)[:-max(keep, 1)]:
        _remove(old)
    return final


@dataclass
class Checkpoint:
    round: int
    path: Path
    state: dict

    def restore(self, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                prompt_rng: random.Random, sample_gen: torch.Generator, pipeline=None,
                scaler: torch.amp.GradScaler | None = None) -> None:
        """Put the saved weights, optimiser state, RNG states and (given the run's `Pipeline`)
        the interventions' controller state into a freshly set-up run."""
        missing, unexpected = load_model(model, str(self.path / "model.safetensors"), strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{self.path}: weights do not fit the model (missing {missing[:3]}, "
                                  f"unexpected {unexpected[:3]}); was config.yaml edited?")
        optimizer.load_state_dict(torch.load(self.path / "optimizer.pt", map_location="cpu", weights_only=True))
        if scaler is not None and self.state.get("grad_scaler"):
            scaler.load_state_dict(self.state["grad_scaler"])
        rng = torch.load(self.path / "rng.pt", map_location="cpu", weights_only=True)
        torch.set_rng_state(rng["torch"])
        sample_gen.set_state(rng["sample_gen"])
        p = self.state["prompt_rng"]
        prompt_rng.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
        if pipeline is not None:
            try:  # checkpoints written before controllers existed hold none (and need none)
                pipeline.load_state_dict(self.state.get("interventions", {}))
            except ValueError as e:
                raise CheckpointError(f"{self.path}: {e}") from None


def _check(path: Path) -> dict:
    try:
        state = json.loads((path / "state.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable state.json ({e})") from None
    if state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {state.get('format')!r}, expected {FORMAT}")
    for name, digest in state["sha256"].items():
        if not (path / name).is_file() or _sha256(path / name) != digest:
            raise CheckpointError(f"{path}: {name} is damaged (sha256 mismatch)")
    return state


def latest_checkpoint(run_dir: Path, config_yaml_sha: str, log=print) -> Checkpoint | None:
    """The newest intact checkpoint, or None when the run has none (resume from round 0)."""
    for round_, path in reversed(list_checkpoints(run_dir)):
        try:
            state = _check(path)
        except CheckpointError as e:
            log(f"warning: skipping checkpoint: {e}")
            continue
        if state["config_sha256"] != config_yaml_sha:
            raise CheckpointError(f"{Path(run_dir) / 'config.yaml'} changed since the checkpoint of round "
                                  f"{round_}; restore it, or start a new run with the new config")
        return Checkpoint(round_, path, state)
    return None
