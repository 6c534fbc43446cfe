"""Fingerprints of the files a run reads besides its config: the checkpoint at `model.path`
(policy start, frozen base, tokenizer) and the prompt files (`task.path`, `task.val_path`).

A run records them in run.json (`inputs`); `resume` compares them, because new weights saved
over the same folder or an edited prompt file would train the rest of the run on something
else under the same config. The base model's cached pass@k curve is keyed by them too.

A file up to 64 MiB (a prompt file, a tokenizer, a small model) is fingerprinted by its size
and a SHA-256 of all of it: an answer fixed in the middle of a prompt file, the same length
as before, is a changed input. A larger file (a weights shard) by its size and a SHA-256 of
its first and last MiB: new weights differ there, and a 100 GB checkpoint is read in
milliseconds. A copy (`cp`, `rsync`) keeps either, unlike a modification time. Runs recorded
before whole-file stamps hold edge stamps for every file; those are compared as edge stamps.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

EDGE = 1 << 20  # bytes read at each end of a large file
WHOLE = 64 << 20  # files up to this size are hashed whole (~40 ms)
WHOLE_MARK = "all-"  # a whole-file stamp's digest starts with it; an edge stamp's never does


def _edges_digest(f, size: int) -> str:
    h = hashlib.sha256(f.read(EDGE))
    if size > EDGE:
        f.seek(max(EDGE, size - EDGE))
        h.update(f.read(EDGE))
    return h.hexdigest()[:16]


def file_stamp(path: Path, edges_only: bool = False) -> str:
    """'size:all-<sha256>' of a file up to WHOLE bytes, 'size:<sha256 of both ends>' above it
    or when `edges_only` (the form runs recorded before whole-file stamps hold)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if edges_only or size > WHOLE:
            return f"{size}:{_edges_digest(f, size)}"
        h = hashlib.sha256()
        for block in iter(lambda: f.read(EDGE), b""):
            h.update(block)
        return f"{size}:{WHOLE_MARK}{h.hexdigest()[:16]}"


def is_edge_stamp(stamp: str) -> bool:
    return not stamp.partition(":")[2].startswith(WHOLE_MARK)


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


def input_paths(cfg) -> dict[str, str | None]:
    """{config key: the path it names} for the input files a TrainConfig can name."""
    return {"model.path": cfg.model.path, "task.path": cfg.task.path, "task.val_path": cfg.task.val_path}


def input_stamps(cfg) -> dict[str, dict]:
    """{config key: stamps} of the input files a TrainConfig names; only the keys that name files."""
    found = {key: stamps(where) for key, where in input_paths(cfg).items()}
    return {k: v for k, v in found.items() if v}


def changed_inputs(recorded: dict[str, dict], now: dict[str, dict], roots: dict[str, str] | None = None) -> list[str]:
    """'key: file has changed' or 'key: file is gone' for every recorded input file that
    differs now or cannot be found. `roots` ({key: the path the config names}) lets a stamp
    recorded in the edge form be taken again in that form, so an older run's unchanged files
    still match."""
    out = []
    for key, files in recorded.items():
        current = now.get(key, {})
        for name, stamp in files.items():
            if name not in current:
                out.append(f"{key}: {name} is gone")
                continue
            seen = current[name]
            if seen != stamp and is_edge_stamp(stamp) and not is_edge_stamp(seen) and roots and roots.get(key):
                seen = file_stamp(_file_in(roots[key], name), edges_only=True)
            if seen != stamp:
                out.append(f"{key}: {name} has changed")
    return out


def _file_in(where: str, name: str) -> Path:
    root = Path(where)
    return root if root.is_file() else root / name
