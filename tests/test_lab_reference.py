"""The lab is a regression reference: the same seed and thread count must give the same numbers.

`tests/fixtures/lab_smoke_reference.json` holds every logged metric (times excepted) of a
3-round smoke run of clip_cov+entropy_bonus+kl_anchor with threads=1, recorded before the layout and task refactors. A change
that moves these numbers is a behaviour change: re-record the fixture on purpose
(`python tests/test_lab_reference.py --record`) and say why in the commit.

The run uses torch's AVX2 kernels whatever the CPU has (ATEN_CPU_CAPABILITY=avx2): on an AVX-512
machine torch dispatches its AVX-512 kernels, whose vectorised reductions sum in another order,
so every entropy moves in its last bits (~2e-7 relative) with the same code; the reference was
recorded with AVX2 kernels (found when a fresh clone on an AVX-512 machine failed here).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "lab_smoke_reference.json"
VOLATILE = ("time/", "perf/")


def smoke_metrics(runs_dir: Path) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ATEN_CPU_CAPABILITY": "avx2"}
    cmd = [sys.executable, "-m", "entropyctl", "train", "experiment=smoke", "sweep=ref", "threads=1",
           "progress=false", f"runs_dir={runs_dir}",
           # The smoke model earns no reward yet: the stacked penalties and Clip-Cov's picks make
           # the update, the KL and the selections move the weights all the same.
           "intervention=[clip_cov,entropy_bonus,kl_anchor]"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (run,) = [p for p in (runs_dir / "ref").iterdir() if p.is_dir()]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith(VOLATILE)} for r in rows]


def test_lab_smoke_numbers_match_the_reference(tmp_path):
    expected = json.loads(FIXTURE.read_text())
    got = smoke_metrics(tmp_path)
    assert len(got) == len(expected)
    for r, (g, e) in enumerate(zip(got, expected)):
        missing = sorted(set(e) - set(g))
        assert not missing, f"round {r} no longer logs {missing}"
        moved = {k: (g[k], v) for k, v in e.items()
                 if not (g[k] == v or (isinstance(v, float) and math.isclose(g[k], v, rel_tol=1e-9, abs_tol=1e-12)))}
        assert not moved, f"round {r}: metrics moved (got, reference): {moved}"


if __name__ == "__main__" and "--record" in sys.argv:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        FIXTURE.write_text(json.dumps(smoke_metrics(Path(d)), indent=1, sort_keys=True) + "\n")
    print(f"wrote {FIXTURE}")
