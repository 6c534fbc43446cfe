"""Reading what wandb wrote: the records of a `run-<id>.wandb` file (an offline run, or the
local copy of an online one), without wandb's service.

The file is a LevelDB-style log: a 7-byte header (`:W&B`, magic 0xBEE1, version 0), then 32 KiB
blocks of records, each with a 7-byte header (CRC32C 4, length 2 little-endian, type 1: full,
first, middle, last) and a protobuf `Record` (wandb.proto.wandb_internal_pb2). wandb 0.31 no
longer ships a Python reader, so this is ours. Needs the `[wandb]` extra for the protobuf schema.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Iterator

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


class WandbFileError(ValueError):
    """A file that is not a readable wandb run log, phrased in one line."""


def raw_records(path: Path) -> Iterator[bytes]:
    data = Path(path).read_bytes()
    if data[:4] != b":W&B" or len(data) < HEADER:
        raise WandbFileError(f"{path}: not a wandb run file (no :W&B header)")
    pos, parts = HEADER, []
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # a block's tail too short for a header is padding
            pos += left
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        if kind == 0 and length == 0:  # zero padding at the end of a block
            pos += left
            continue
        body = data[pos + HEADER: pos + HEADER + length]
        pos += HEADER + length
        if kind == FULL:
            yield body
        elif kind == FIRST:
            parts = [body]
        elif kind == MIDDLE:
            parts.append(body)
        elif kind == LAST:
            parts.append(body)
            yield b"".join(parts)
            parts = []
        else:
            raise WandbFileError(f"{path}: unknown record type {kind} at byte {pos}")


def read_run(path: Path) -> dict[str, Any]:
    """{'run_id', 'config': {...}, 'history': [{'_step': n, key: value, ...}], 'summary': {...},
    'complete': bool} from one run-<id>.wandb file. wandb's service writes the file after
    `finish()` returns, so a reader that needs all of it waits for `complete`."""
    try:
        from wandb.proto import wandb_internal_pb2 as pb
    except ImportError:
        raise WandbFileError("reading wandb files needs wandb: pip install 'entropyctl[wandb]'") from None

    out: dict[str, Any] = {"run_id": None, "config": {}, "history": [], "summary": {}, "complete": False}
    for raw in raw_records(path):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out["run_id"] = rec.run.run_id
            out["config"].update(_items(rec.run.config.update))
        elif kind == "config":
            out["config"].update(_items(rec.config.update))
        elif kind == "history":
            row = _items(rec.history.item)
            row["_step"] = rec.history.step.num
            out["history"].append(row)
        elif kind == "summary":
            out["summary"].update(_items(rec.summary.update))
        elif kind == "exit":  # the run's last record: wandb's writer has finished this file
            out["complete"] = True
    return out


def _items(items) -> dict[str, Any]:
    row = {}
    for it in items:
        key = it.key or "/".join(it.nested_key)
        try:
            row[key] = json.loads(it.value_json)
        except (json.JSONDecodeError, TypeError):
            row[key] = it.value_json
    return row


def find_run_files(root: Path) -> list[Path]:
    """The run-*.wandb files under `root` (a run dir's wandb/ folder, or one offline-run dir)."""
    return sorted(Path(root).rglob("run-*.wandb"))
