"""samples.jsonl, the completions a researcher reads: one JSON object per sampled completion,
{round, prompt, completion, reward, format, finished}, appended by the round loop through
`RunWriter.append(..., to=SAMPLES)` (store.py). Reading is forgiving (a torn or foreign
line is skipped: these records are for reading, no number is computed from them), and a
resume drops the records of the rounds it recomputes so each round's samples appear once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from entropyctl.runstore.store import SAMPLES, atomic_write_text


def read_samples(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / SAMPLES
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("round"), int):
            out.append(record)
    return out


def truncate_samples(run_dir: Path, start: int) -> int:
    """Keep the records of rounds 0..start-1 (a resume from round `start`); returns how many
    were dropped."""
    path = Path(run_dir) / SAMPLES
    records = read_samples(run_dir)
    keep = [r for r in records if r["round"] < start]
    if path.is_file() and len(keep) != len(path.read_text(encoding="utf-8").splitlines()):
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep))
    return len(records) - len(keep)
