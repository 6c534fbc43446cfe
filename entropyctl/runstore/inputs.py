"""Fingerprints of the files a run reads besides its config: the checkpoint at `model.path`
(policy start, frozen base, tokenizer) and the prompt files (`task.path`, `task.val_path`).

A run records them in run.json (`inputs`); `resume` compares them, because new weights saved
over the same folder or an edited prompt file would train the rest of the run on something
else under the same config. The base model's cached pass@k curve is keyed by them too.

A file's fingerprint is its size and a SHA-256 of its first and last MiB: a different
checkpoint or prompt file differs there, and a 100 GB checkpoint is read in milliseconds. A
copy (`cp`, `rsync`) keeps it, unlike a modification time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

EDGE = 1 << 20  # bytes read at each end of a file


def file_stamp(path: Path) -> str:
    size = path.stat().st_size
    h = hashlib.sha256()
    with path.open("rb") as f:
        h.update(f.read(EDGE))
        if size > EDGE:
            f.seek(max(EDGE, size - EDGE))
            h.update(f.read(EDGE))
    return f"{size}:{h.hexdigest()[:16]}"


# What transformers reads from a checkpoint folder; a README or an eval log beside them may change.
CHECKPOINT_NAMES = {"config.json", "generation_config.json", "special_tokens_map.json", "added_tokens.json",
                    "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json"}


def _read_by_transformers(name: str) -> bool:
    return (name in CHECKPOINT_NAMES or name.startswith("tokenizer") or name.endswith((".safetensors", ".bin"))
            or name.endswith(".index.json"))


def stamps(where: str | None) -> dict[str, str]:
    """{file name: fingerprint} of a file, or of a checkpoint folder's model and tokenizer
    files; {} for None or a path that does not exist (the config checks report those)."""
    if not where:
        return {}
    root = Path(where)
    if root.is_file():
        return {root.name: file_stamp(root)}
    if root.is_dir():
        return {f.name: file_stamp(f) for f in sorted(root.iterdir()) if f.is_file() and _read_by_transformers(f.name)}
    return {}


def input_stamps(cfg) -> dict[str, dict]:
    """{config key: stamps} of the input files a TrainConfig names; only the keys that name files."""
    found = {"model.path": stamps(cfg.model.path), "task.path": stamps(cfg.task.path),
             "task.val_path": stamps(cfg.task.val_path)}
    return {k: v for k, v in found.items() if v}


def changed_inputs(recorded: dict[str, dict], now: dict[str, dict]) -> list[str]:
    """'key: file has changed' or 'key: file is gone' for every recorded input file that
    differs now or cannot be found."""
    out = []
    for key, files in recorded.items():
        current = now.get(key, {})
        out += [f"{key}: {name} {'is gone' if name not in current else 'has changed'}"
                for name, stamp in files.items() if current.get(name) != stamp]
    return out
