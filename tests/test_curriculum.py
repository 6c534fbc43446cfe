"""task=curriculum, the plasticity probe (issue 10): the pure pieces (phase of a round, rounds to
threshold, the metrics folded from rows and their replay on resume), the task switching its
prompts, verifier and validation set at the configured round, and a real smoke run that
switches operand ranges, then resumes from a checkpoint after the switch."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from entropyctl.runstore.glossary import CURRICULUM, describe
from entropyctl.tasks import build
from entropyctl.tasks.curriculum import phase_of, rounds_to_threshold
from tests.test_configs import compose_train


def curriculum(*overrides: str):
    return build(compose_train("task=curriculum", "rounds=20", "task.curriculum.switch_round=4", *overrides).task)


# ----------------------------------------------------------------------------- pure functions


def test_phase_is_a_function_of_the_round():
    assert [phase_of(r, 3) for r in range(6)] == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("acc, want", [
    ({0: 0.9, 1: 0.9, 4: 0.1, 5: 0.4, 6: 0.5, 7: 0.9}, 3),  # A's rounds never count; 6 is B's 3rd
    ({4: 0.6}, 1),  # reached after B's first round
    ({4: 0.1, 6: 0.2, 9: 0.55}, 6),  # eval every few rounds: the first evaluated round that reaches it
    ({4: 0.49, 5: math.nan, 6: 0.3}, None),  # never reached (NaN is not a reward)
    ({}, None),
])
def test_rounds_to_threshold_from_a_hand_made_reward_sequence(acc, want):
    assert rounds_to_threshold(acc, switch_round=4, threshold=0.5) == want


# ----------------------------------------------------------------------------- the task


def test_the_switch_changes_prompts_verifier_and_validation_at_the_round():
    task = curriculum("task.curriculum.a.operands=[0,49]", "task.curriculum.b.operands=[50,99]")
    rng = random.Random(0)

    def operands(problems):
        return {int(x) for p in problems for x in p.prompt.split("+")}

    seen = {}
    for r in range(8):
        assert task.at_round(r) == {"curriculum/phase": float(r >= 4)}
        seen[r] = operands(task.sample_train(rng, 16))
        assert operands(task.val_problems) <= (set(range(50, 100)) if r >= 4 else set(range(50)))
    assert all(max(seen[r]) < 50 for r in range(4)) and all(min(seen[r]) >= 50 for r in range(4, 8))
    task.at_round(1)  # back before the switch: A again (the state follows the round, nothing else)
    assert max(operands(task.sample_train(rng, 16))) < 50


def test_a_phase_cannot_change_the_completion_budget():
    """Rollout, eval and the prompt-fit check read the run's task.max_new_tokens: a phase's own
    would be silently ignored."""
    from entropyctl.errors import BadInput

    with pytest.raises(BadInput, match="task.curriculum.b.max_new_tokens is not a task setting a phase can change"):
        curriculum("+task.curriculum.b.max_new_tokens=4")


def test_b_pays_only_its_formats():
    task = curriculum()  # conf/task/curriculum.yaml: B pays ` => answer ` only
    p = task.val_problems[0]
    task.at_round(3)
    assert task.score(f" #### {p.answer}", p) == 1.0 and task.score(f" => answer {p.answer}", p) == 1.0
    task.at_round(4)
    assert task.score(f" #### {p.answer}", p) == 0.0 and task.score(f" => answer {p.answer}", p) == 1.0
    assert task.classify(f" #### {p.answer}") == "hash"  # the unpaid format is still told apart
    assert task.format_names == ["equals", "arrow", "hash"]


def rows(kl_exact_at_switch: bool) -> list[dict]:
    out = []
    for r, acc in enumerate([0.2, 0.4, 0.6, 0.7, 0.1, 0.3, 0.55, 0.7, 0.4]):
        row = {"round": r, "eval/acc": acc, "kl/base_k3": 0.01 * r}
        if r % 2 == 0 and kl_exact_at_switch:
            row["kl/rev_exact"] = 0.1 * r
        out.append(row)
    return out


@pytest.mark.parametrize("exact", [True, False])
def test_metrics_folded_from_the_rows(exact):
    task = curriculum()
    logged = [task.observe(row) for row in rows(exact)]
    assert [set(m) & {"curriculum/eval_acc_a", "curriculum/eval_acc_b"} for m in logged] == \
        [{"curriculum/eval_acc_a"}] * 4 + [{"curriculum/eval_acc_b"}] * 5
    assert logged[4]["curriculum/kl_at_switch"] == pytest.approx(0.4 if exact else 0.04)
    assert logged[4]["curriculum/kl_at_switch_exact"] == (1.0 if exact else 0.0)
    reached = [(i, m["curriculum/rounds_to_threshold"])
               for i, m in enumerate(logged) if "curriculum/rounds_to_threshold" in m]
    assert reached == [(6, 3.0)]  # logged once, in round 6's row (B's 3rd round), never again at 7
    assert sum("curriculum/kl_at_switch" in m for m in logged) == 1
    assert {k for m in logged for k in m} <= set(CURRICULUM)  # each has its glossary line


def test_a_resume_replays_the_rows_and_logs_what_an_uninterrupted_run_logs():
    full = rows(True)
    straight = curriculum()
    expected = [straight.observe(row) for row in full]
    for cut in range(len(full)):
        resumed = curriculum()  # a fresh task, as setup() builds it on resume
        for row in full[:cut]:
            resumed.observe(row)  # loop() replays metrics.jsonl up to the checkpoint
        resumed.at_round(cut)
        assert [resumed.observe(row) for row in full[cut:]] == expected[cut:], cut


# ----------------------------------------------------------------------------- a real run

ROUNDS, SWITCH = 5, 2
ARGS = ("experiment=smoke", "task=curriculum", f"rounds={ROUNDS}", f"task.curriculum.switch_round={SWITCH}",
        "task.curriculum.a.operands=[0,49]", "task.curriculum.b.operands=[50,99]",
        "task.curriculum.b.reward_formats=null", "log.samples_per_round=8", "checkpoint_every=3",
        "checkpoint_keep=3", "probe.every=2", "probe.pass_k_max=4", "probe.pass_prompts=4",
        "intervention=entropy_bonus", "threads=1", "progress=false")  # the bonus moves the weights
VOLATILE = ("time/", "perf/")


def entropyctl(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "entropyctl", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def stable(rs: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith(VOLATILE)} for r in rs]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    # Its own runs folder: the curriculum's base is cached apart from the session's smoke base
    # (another task name), and other tests expect that one alone in the shared cache.
    runs = tmp_path_factory.mktemp("runs")
    entropyctl("train", *ARGS, f"runs_dir={runs}", "sweep=curriculum")
    (path,) = [p for p in (runs / "curriculum").iterdir() if p.is_dir()]
    return path


def test_the_run_switches_at_the_configured_round(run: Path):
    metrics = read(run / "metrics.jsonl")
    assert [m["curriculum/phase"] for m in metrics] == [0.0, 0.0, 1.0, 1.0, 1.0]
    by_round: dict[int, set[int]] = {}
    for s in read(run / "samples.jsonl"):
        by_round.setdefault(s["round"], set()).update(int(x) for x in s["prompt"].split("+"))
    assert sorted(by_round) == list(range(ROUNDS))
    for r, ops in by_round.items():
        assert ops <= (set(range(50, 100)) if r >= SWITCH else set(range(50))), (r, ops)
    switch = metrics[SWITCH]
    assert switch["curriculum/kl_at_switch"] == switch["kl/rev_exact"] > 0  # probes ran at the switch
    assert switch["curriculum/kl_at_switch_exact"] == 1.0
    assert [("curriculum/eval_acc_a" in m, "curriculum/eval_acc_b" in m) for m in metrics] == \
        [(True, False)] * SWITCH + [(False, True)] * (ROUNDS - SWITCH)
    assert not any("curriculum/rounds_to_threshold" in m for m in metrics)  # the smoke model earns nothing
    generic = describe("no/such/key")
    assert all(describe(k) != generic for m in metrics for k in m if k.startswith("curriculum/"))


def test_resume_after_the_switch_logs_what_the_uninterrupted_run_logged(run: Path):
    """The run's own checkpoint of round 3 (after the switch): the newer ones removed and the
    run marked interrupted, as a run killed in round 4 leaves it."""
    import shutil

    from entropyctl.train.checkpoint import list_checkpoints

    before = read(run / "metrics.jsonl")
    for r, path in list_checkpoints(run):
        if r > 3:
            shutil.rmtree(path)
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    entropyctl("resume", str(run), "--no-progress")
    after = read(run / "metrics.jsonl")
    assert [m["round"] for m in after] == list(range(ROUNDS))
    assert stable(after) == stable(before)
