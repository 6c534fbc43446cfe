"""The narrowing verdict (analysis/verdict.py) on hand-made runs: labels follow the numbers
(kept = significantly higher than the baseline after Holm, lost = lower, else no evidence),
never the group's name; the covariance check pairs cov/pred_dH with the next round's change."""

from __future__ import annotations

import math

import pytest
import yaml

from entropyctl.analysis.compare import compare_runs
from entropyctl.analysis.verdict import KEPT, LOST, NO_EVIDENCE, dH_prediction, label, narrowing, narrowing_table
from entropyctl.cli.compare import load_inputs
from entropyctl.runstore.store import create_run


def write_run(root, intervention, seed, rows):
    w = create_run(root, "sw", f"{intervention}__lab__s{seed}__t", yaml.safe_dump({}), [],
                   {"intervention": intervention, "seed": seed})
    for row in rows:
        w.append(row)
    w.finish("finished")


def rows(seqsum, fmt_ent, acc, cka, pass64, n=6):
    """n rounds with constant every-round metrics, probes at rounds 0, 3 and n-1."""
    out = []
    for r in range(n):
        row = {"round": r, "reward/mean": acc, "eval/acc": acc, "entropy/seqsum": seqsum,
               "entropy/first": 1.0, "format/entropy": fmt_ent, "entropy/tokmean": 1.0}
        if r in (0, 3, n - 1):
            row.update({"repr/cka/layer0": 1.0, "repr/cka/layer2": 1.0 if r == 0 else cka,
                        "eval/pass@1": acc, "eval/pass@64": 1.0 if r == 0 else pass64})
        out.append(row)
    return out


def build(tmp_path, names=("grpo", "alpha", "beta")):
    base, a, b = names
    jitter = (0.0, 0.01, -0.01)
    for s, j in enumerate(jitter):
        write_run(tmp_path, base, s, rows(2.0 + j, 0.2 + j, 0.60 + j, 0.50 + j, 0.70 + j))
        # alpha: far more per-response entropy and CKA, same formats, same reward
        write_run(tmp_path, a, s, rows(3.0 + j, 0.2 - j, 0.60 - j, 0.90 + j, 0.70 - j))
        # beta: lost format diversity and pass@64, cost reward
        write_run(tmp_path, b, s, rows(2.0 - j, 0.05 + j, 0.40 + j, 0.50 - j, 0.50 + j))
    runs = load_inputs([tmp_path / "sw"], None)
    result = compare_runs(runs, baseline=base, last_k=2, include_incomplete=False, by=None)
    result["narrowing"] = narrowing(result, runs)
    return result


def answers(result, group):
    return {q: a["label"] for q, a in result["narrowing"][group]["answers"].items()}


def test_labels_follow_the_numbers(tmp_path):
    result = build(tmp_path)
    assert answers(result, "alpha") == {
        "entropy_per_response": KEPT, "entropy_first": NO_EVIDENCE, "format_diversity": NO_EVIDENCE,
        "repr_close_to_base": KEPT, "pass_at_large_k": NO_EVIDENCE, "reward": NO_EVIDENCE}
    assert answers(result, "beta") == {
        "entropy_per_response": NO_EVIDENCE, "entropy_first": NO_EVIDENCE, "format_diversity": LOST,
        "repr_close_to_base": NO_EVIDENCE, "pass_at_large_k": LOST, "reward": LOST}
    a = result["narrowing"]["alpha"]["answers"]["repr_close_to_base"]
    assert a["key"] == "repr/cka/layer2"  # the deepest probed layer
    assert a["diff"] == pytest.approx(0.4) and a["lo"] < 0.4 < a["hi"] and a["p_holm"] < 0.05
    assert result["narrowing"]["grpo"]["baseline"] and not result["narrowing"]["grpo"]["answers"]


def test_probe_values_are_the_last_probes_not_round_zero(tmp_path):
    result = build(tmp_path)
    # round 0 logs pass@64 = 1 everywhere: averaging it in would shrink beta's loss
    assert result["narrowing"]["beta"]["answers"]["pass_at_large_k"]["diff"] == pytest.approx(-0.2)


def test_labels_do_not_depend_on_the_group_names(tmp_path):
    # the same numbers under names that suggest the opposite
    result = build(tmp_path, names=("grpo", "kl_anchor", "clip_cov"))
    assert answers(result, "kl_anchor")["entropy_per_response"] == KEPT
    assert answers(result, "clip_cov")["format_diversity"] == LOST


def test_the_table_has_one_row_per_question_and_a_reading(tmp_path):
    result = build(tmp_path)
    head, body = narrowing_table(result, long=True)
    assert head[1:] == ["alpha vs grpo", "beta vs grpo"]
    assert body[-1][0] == "reading" and "kept less format diversity" in body[-1][2]
    assert body[0][1].startswith("kept: +1")


def test_label_needs_a_holm_adjusted_p_below_alpha():
    assert label({"diff": 0.3, "p_holm": 0.01}) == KEPT
    assert label({"diff": -0.3, "p_holm": 0.01}) == LOST
    assert label({"diff": 0.3, "p_holm": 0.2}) == NO_EVIDENCE
    assert label({"diff": 0.3, "p_holm": None}) == NO_EVIDENCE


def test_dH_prediction_pairs_each_round_with_the_next_change():
    H = [1.0, 0.9, 0.85, 0.6, 0.55]
    # pred of round r = H[r+1] - H[r] exactly: r = 1; scaled by 3 it still is
    rs = [{"round": r, "entropy/tokmean": h, "cov/pred_dH": 3 * (H[r + 1] - h) if r + 1 < len(H) else 0.0}
          for r, h in enumerate(H)]
    assert dH_prediction(rs) == pytest.approx(1.0)
    flipped = [{**row, "cov/pred_dH": -row["cov/pred_dH"]} for row in rs]
    assert dH_prediction(flipped) == pytest.approx(-1.0)
    assert math.isnan(dH_prediction(rs[:2]))


def test_pass_question_skips_a_k_the_baseline_saturates(tmp_path):
    for s, j in enumerate((0.0, 0.01, -0.01)):
        write_run(tmp_path, "grpo", s, rows(2.0, 0.2, 0.60 + j, 0.5, 1.0))
        write_run(tmp_path, "other", s, rows(2.0, 0.2, 0.60 - j, 0.5, 1.0))
    runs = load_inputs([tmp_path / "sw"], None)
    result = compare_runs(runs, baseline="grpo", last_k=2, include_incomplete=False, by=None)
    result["narrowing"] = narrowing(result, runs)
    # pass@64 is 1 everywhere: the question moves to pass@1 (the largest unsaturated k)
    assert result["narrowing"]["other"]["answers"]["pass_at_large_k"]["key"] == "eval/pass@1"


def test_compare_writes_the_verdict_to_every_output(tmp_path):
    import json

    from typer.testing import CliRunner

    from entropyctl.cli.main import app

    build(tmp_path)
    out = CliRunner().invoke(app, ["compare", str(tmp_path / "sw"), "--last-k", "2", "--out", str(tmp_path / "o")])
    assert out.exit_code == 0, out.output
    assert "collapse or convergence?" in out.output and "kept" in out.output
    cmp = json.loads((tmp_path / "o" / "compare.json").read_text())
    assert cmp["narrowing"]["alpha"]["answers"]["entropy_per_response"]["label"] == KEPT
    assert "## Collapse or convergence?" in (tmp_path / "o" / "report.md").read_text()
    assert "<h2>Collapse or convergence?</h2>" in (tmp_path / "o" / "report.html").read_text()
