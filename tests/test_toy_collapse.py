"""@slow (make test-slow): on the real lab config, GRPO collapses entropy while reward rises,
and Clip-Cov / the entropy bonus keep per-response entropy higher. Minutes on 2 cores; the
base model comes from the repository's runs/.cache when `make demo` already built it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from entropyctl.runstore import find_runs

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
ROUNDS = 40


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> dict[str, list[dict]]:
    runs_dir = tmp_path_factory.mktemp("runs")
    out = subprocess.run(
        [sys.executable, "-m", "entropyctl", "train", "-m", "intervention=grpo,clip_cov,entropy_bonus",
         f"rounds={ROUNDS}", "sweep=slow", f"runs_dir={runs_dir}", f"cache_dir={REPO / 'runs' / '.cache'}",
         "progress=false"], capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    return {r.intervention.split("+")[-1]: r.metrics() for r in find_runs([runs_dir / "slow"])}


def mean(rows, key, sl):
    vals = [r[key] for r in rows[sl] if r.get(key) is not None]
    return sum(vals) / len(vals)


def test_grpo_entropy_falls_and_reward_rises(sweep):
    g = sweep["grpo"]
    assert mean(g, "entropy/seqmean", slice(-5, None)) < 0.75 * mean(g, "entropy/seqmean", slice(0, 3))
    assert mean(g, "reward/mean", slice(-5, None)) > mean(g, "reward/mean", slice(0, 3)) + 0.15
    # and the policy commits to one format
    assert g[-1]["format/top_share"] > 0.9


def test_clip_cov_and_bonus_keep_more_per_response_entropy(sweep):
    base = mean(sweep["grpo"], "entropy/seqsum", slice(-5, None))
    assert mean(sweep["clip_cov"], "entropy/seqsum", slice(-5, None)) > 1.2 * base
    assert mean(sweep["entropy_bonus"], "entropy/seqsum", slice(-5, None)) > 1.2 * base
