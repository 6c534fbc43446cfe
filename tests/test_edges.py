"""Issue 9, the edges: one default per setting, the reference's KL clamp and singleton group,
fit-law and compare agreeing on a run, the log readers' hostile inputs, the layout rules
(no module over 400 lines, no import loop) and resume from another working directory."""

from __future__ import annotations

import ast
import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from entropyctl.cli.main import app
from entropyctl.interventions import REGISTRY, load_all
from entropyctl.maths.advantage import compute_advantage
from entropyctl.maths.losses import kl_estimate
from entropyctl.runstore.store import create_run

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "entropyctl"


# ----------------------------------------------------------------------------- one default per setting


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "conf" / "intervention").glob("*.yaml")))
def test_each_shipped_yaml_value_is_the_dataclass_default(name):
    """The YAML repeats the default (so `intervention.x.key=` overrides are discoverable); a value
    that differs would make the error messages and the docs quote another number than runs."""
    load_all()
    shipped = yaml.safe_load((ROOT / "conf" / "intervention" / f"{name}.yaml").read_text())[name]
    defaults = {f.name: f.default for f in dataclasses.fields(REGISTRY[name].config_cls)}
    for key, value in shipped.items():
        if isinstance(value, str) and value.startswith("${"):
            continue  # an interpolation (dr_grpo.loss_scale follows task.max_new_tokens)
        assert defaults[key] == value, f"{name}.{key}: YAML {value!r}, dataclass {defaults[key]!r}"


def test_config_enums_match_the_functions_behind_them():
    from entropyctl import config
    from entropyctl.maths import advantage, losses

    assert config.AGG_MODES == losses.AGG_MODES
    assert set(config.ESTIMATORS) == set(advantage.ESTIMATORS)


def test_config_yaml_records_what_ran(tmp_path):
    """dr_grpo replaces the estimator and the aggregation: config.yaml says so, with absolute paths."""
    from tests.test_configs import compose_train
    from entropyctl.train.loop import recorded_config

    cfg = compose_train("intervention=dr_grpo", "runs_dir=rel/runs")
    ran, text = recorded_config(cfg)
    saved = yaml.safe_load(text)
    assert (saved["advantage"]["estimator"], saved["optim"]["agg_mode"]) == ("dr_grpo", "seq-mean-token-sum-norm")
    assert saved["optim"]["loss_scale"] == cfg.task.max_new_tokens
    assert Path(saved["runs_dir"]).is_absolute() and Path(saved["cache_dir"]).is_absolute()
    assert cfg.advantage.estimator == "grpo"  # the composed config itself is left alone


# ----------------------------------------------------------------------------- the maths at the edges


@pytest.mark.parametrize("kind", ["k1", "k2", "k3", "abs", "k1+", "k2+", "k3+", "abs+"])
@pytest.mark.parametrize("delta", [25.0, -25.0])
def test_kl_estimators_beyond_the_clamp(kind, delta):
    """verl clamps the log-ratio only inside k3; every other estimator (and the k2 gradient of
    the straight-through forms) sees the raw log-ratio of the most drifted tokens."""
    logp = torch.tensor([delta - 1.0], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([-1.0], dtype=torch.float64)
    value = kl_estimate(logp, ref, kind)
    value.sum().backward()
    base = kind.rstrip("+")
    lr = delta
    clamped = max(-20.0, min(20.0, lr))
    expected = {"k1": lr, "k2": 0.5 * lr**2, "abs": abs(lr),
                "k3": max(-10.0, min(10.0, math.exp(-clamped) + clamped - 1.0))}[base]
    grad = {"k1": 1.0, "k2": lr, "abs": math.copysign(1.0, lr), "k3": 0.0}[base]  # k3: value clamped at 10
    if kind.endswith("+"):
        grad = lr  # straight-through: k2's gradient
    assert value.item() == pytest.approx(expected)
    assert logp.grad.item() == pytest.approx(grad)


def test_grpo_group_of_one_is_score_over_one_plus_eps():
    """spec §5.1: a singleton group has mean 0 and std 1 -> A = s / (1 + eps)."""
    s = torch.tensor([0.0, 1.0, 0.5])
    got = compute_advantage(s, 1, "grpo", 0.1)
    torch.testing.assert_close(got, s / 1.1)


# ----------------------------------------------------------------------------- fit-law and compare agree


def _law_run(runs: Path, name: str, task: str = "addition", rounds: int = 14) -> Path:
    w = create_run(runs, "sw", name, f"seed: 0\ntask:\n  name: {task}\n", [], {
        "intervention": "grpo", "seed": 0, "task": task})
    for r in range(rounds):
        H = 1.2 * math.exp(-r / 4) + 0.05  # pre-update entropy of round r
        H_after = 1.2 * math.exp(-(r + 1) / 4) + 0.05  # what round r + 1 will log
        acc = 0.9 - 0.3 * math.exp(H_after) + 0.01 * math.sin(r)  # the policy after round r's update
        w.append({"round": r, "entropy/seqmean": H, "eval/acc": acc})
    w.finish("finished")
    w.close()
    return w.path


def test_fit_law_and_compare_print_the_same_ceiling(tmp_path):
    run = _law_run(tmp_path / "runs", "grpo__lab__s0__x")
    fl = CliRunner().invoke(app, ["fit-law", str(run), "--json", "--no-write"])
    assert fl.exit_code == 0, fl.output
    fit = json.loads(fl.stdout.splitlines()[0])
    cmp = CliRunner().invoke(app, ["compare", str(run), "--json", "--out", str(tmp_path / "out")])
    assert cmp.exit_code == 0, cmp.output
    group = json.loads(cmp.stdout)["groups"][0]
    assert group["law"]["ceiling"] == pytest.approx(fit["ceiling"], rel=1e-12)
    assert group["metrics"]["ceiling"]["mean"] == pytest.approx(fit["ceiling"], rel=1e-12)
    # pairing with the next round's entropy recovers the generating law (b - a = 0.9 - 0.3)
    assert fit["ceiling"] == pytest.approx(0.6, abs=0.02)


def test_compare_keeps_tasks_apart_and_skips_a_corrupted_run(tmp_path):
    runs = tmp_path / "runs"
    _law_run(runs, "a", "addition")
    _law_run(runs, "b", "countdown")
    bad = _law_run(runs, "c", "addition")
    (bad / "run.json").write_text('{"id": "c", "sta')
    out = CliRunner().invoke(app, ["compare", str(runs), "--json", "--out", str(tmp_path / "out")])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert sorted(g["name"] for g in result["groups"]) == ["grpo [task=addition]", "grpo [task=countdown]"]
    assert any("skipped a corrupted run" in n and "run.json" in n for n in result["notes"])
    fl = CliRunner().invoke(app, ["fit-law", str(runs), "--no-write", "--by", "task", "--json"])
    assert fl.exit_code == 0, fl.output
    fits = [json.loads(line) for line in fl.stdout.splitlines()]
    assert sum(f["error"] is not None and "corrupted run.json" in f["error"] for f in fits) == 1
    assert sorted(f["group"]["value"] for f in fits if "group" in f) == ["addition", "countdown"]


def test_an_unknown_by_key_is_an_error_in_both(tmp_path):
    run = _law_run(tmp_path / "runs", "a")
    for cmd in (["fit-law", str(run), "--no-write"], ["compare", str(run), "--out", str(tmp_path / "o")]):
        out = CliRunner().invoke(app, [*cmd, "--by", "nope.key"])
        assert out.exit_code == 2 and "--by nope.key: no run has this key" in out.output, out.output
    assert not (tmp_path / "o").exists() and not (run / "fit.json").exists()


# ----------------------------------------------------------------------------- log readers


def _fit(tmp_path, name: str, text: str, *args: str):
    p = tmp_path / name
    p.write_text(text) if isinstance(text, str) else p.write_bytes(text)
    return CliRunner().invoke(app, ["fit-law", str(p), "--json", *args])


def _rows(n=12, scale=1.0):
    return [(s, 1.2 * math.exp(-s / 4) + 0.05, scale * (0.9 - 0.2 * math.exp(1.2 * math.exp(-s / 4) + 0.05)))
            for s in range(n)]


def test_a_csv_with_two_reward_columns_is_an_error(tmp_path):
    text = "step,entropy,reward,reward\n" + "".join(f"{s},{h},{r},{1 - r}\n" for s, h, r in _rows())
    out = _fit(tmp_path, "two.csv", text)
    assert out.exit_code == 2 and "column 'reward' appears 2 times" in out.output


def test_a_cr_only_csv_reads(tmp_path):
    text = "step,entropy,reward\r" + "".join(f"{s},{h},{r}\r" for s, h, r in _rows())
    out = _fit(tmp_path, "mac.csv", text)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout.splitlines()[0])["n"] == 12


def test_ansi_colours_around_verl_console_values_are_stripped(tmp_path):
    text = "".join(f"step:{s} - actor/entropy:\x1b[32m{h}\x1b[0m - critic/score/mean:\x1b[1;33m{r}\x1b[0m\n"
                   for s, h, r in _rows())
    out = _fit(tmp_path, "verl.log", text, "--format", "verl-console")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout.splitlines()[0])["n"] == 12


def test_a_summed_reward_above_one_fits_with_a_warning(tmp_path):
    text = "step,entropy,reward\n" + "".join(f"{s},{h},{r}\n" for s, h, r in _rows(scale=4.0))
    out = _fit(tmp_path, "sum.csv", text)
    assert out.exit_code == 0, out.output
    fit = json.loads(out.stdout.splitlines()[0])
    assert any("outside [0, 1]" in w for w in fit["warnings"])
    assert not any("--perf-scale" in w for w in fit["warnings"])  # [0, 4] is no percentage
    out = _fit(tmp_path, "pct.csv", "step,entropy,reward\n" + "".join(
        f"{s},{h},{r}\n" for s, h, r in _rows(scale=100.0)))
    assert any("--perf-scale 0.01" in w for w in json.loads(out.stdout.splitlines()[0])["warnings"])


def test_trl_console_without_steps_uses_the_row_index(tmp_path):
    text = "".join(f"{{'loss': 0.1, 'entropy': {h}, 'reward': {r}, 'epoch': 0.1}}\n" for _, h, r in _rows())
    out = _fit(tmp_path, "trl.txt", text, "--format", "trl-console")
    assert out.exit_code == 0, out.output
    fit = json.loads(out.stdout.splitlines()[0])
    assert fit["step_range"] == [1.0, 12.0]
    assert any("step = row index" in w for w in fit["warnings"])


# ----------------------------------------------------------------------------- layout


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
            for p in PKG.rglob("*.py")}


def test_no_module_over_400_lines():
    long = {m: n for m, p in _modules().items() if (n := len(p.read_text().splitlines())) > 400}
    assert not long


def test_no_import_loop():
    """Every import of entropyctl (top-level or inside a function) as an edge; no cycle."""
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(p.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1] + ([base] if base else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            for n in names:
                while n and n not in mods:
                    n = n.rpartition(".")[0]
                if n and n != m and not m.startswith(n + "."):  # a package's own __init__ is not a loop
                    edges[m].add(n)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                raise AssertionError("import loop: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(mods):
        if m not in state:
            visit(m)


def test_the_loop_never_imports_resume():
    """start -> loop -> finish; resume sits beside the loop and calls it, never the other way."""
    tree = ast.parse((PKG / "train" / "loop.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and "resume" in m for m in imported)


# ----------------------------------------------------------------------------- resume from anywhere


def test_resume_works_from_another_working_directory(tmp_path, monkeypatch):
    """A run started with a relative runs_dir resumes from another folder, in its own place,
    with its own cached base model (nothing pretrained or written elsewhere)."""
    from tests.test_configs import compose_train
    from entropyctl.train.loop import run
    from entropyctl.train.resume import resume

    start, other = tmp_path / "start", tmp_path / "other"
    start.mkdir()
    other.mkdir()
    monkeypatch.chdir(start)
    cfg = compose_train("experiment=smoke", "rounds=2", "checkpoint_every=1", "progress=false", "threads=1",
                        "runs_dir=runs")
    run_dir = run(cfg, [], log=lambda *_: None)
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["runs_dir"] == str(start / "runs") and saved["cache_dir"] == str(start / "runs" / ".cache")
    info = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))  # as if stopped
    monkeypatch.chdir(other)
    assert resume(Path("../start/runs") / run_dir.parent.name / run_dir.name, log=lambda *_: None)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    assert list(other.iterdir()) == []


# ----------------------------------------------------------------------------- sweeps


def test_a_sweep_with_a_failed_job_exits_non_zero_with_a_line_per_failed_job(tmp_path):
    """Jobs pass every check, one fails at run time (an unloadable checkpoint): the others
    still run, then one summary line per failed job and exit 1."""
    bogus = tmp_path / "bogus"
    bogus.mkdir()
    (bogus / "config.json").write_text("{not json")
    out = CliRunner().invoke(app, ["train", "-m", "experiment=smoke", "rounds=1", "progress=false", "threads=1",
                                   f"runs_dir={tmp_path}/runs", f"model.path={bogus},null"])
    assert out.exit_code == 1, out.output
    failed = [line for line in out.stderr.splitlines() if line.startswith("failed job:")]
    assert len(failed) == 1 and f"model.path={bogus}" in failed[0]
    assert out.stderr.strip().splitlines()[-1] == "error: 1 job(s) of the sweep did not finish (listed above)"
    finished = [json.loads(p.read_text())["status"] for p in (tmp_path / "runs").rglob("run.json")]
    assert finished == ["finished"]


# ----------------------------------------------------------------------------- one error path


def test_a_second_ctrl_c_still_names_the_run_on_disk():
    """The first Ctrl-C carries the run directory; a second one while the status is written
    must not turn into "nothing was written"."""
    from entropyctl.errors import EXIT_INTERRUPTED, classify

    try:
        try:
            first = KeyboardInterrupt()
            first.run_dir = "/runs/sw/grpo__lab__s0__x"
            raise first
        except KeyboardInterrupt:
            raise KeyboardInterrupt  # noqa: B904 - exactly what a second SIGINT does
    except KeyboardInterrupt as second:
        code, line = classify(second)
    assert code == EXIT_INTERRUPTED
    assert "entropyctl resume /runs/sw/grpo__lab__s0__x" in line and "nothing" not in line


def test_exit_codes_come_from_one_place():
    from entropyctl.errors import BadInput, Divergence, classify
    from entropyctl.analysis.logformats import LogImportError
    from entropyctl.interventions import InterventionError
    from entropyctl.runstore.store import RunStoreError

    div = Divergence("non-finite loss")
    div.run_dir, div.round = "/r", 4
    assert classify(div) == (3, "run diverged in round 4: non-finite loss; status, round and reason are in /r/run.json")
    for e in (BadInput("x"), LogImportError("x"), InterventionError("x"), RunStoreError("x")):
        assert classify(e) == (2, "x")
    assert classify(RuntimeError("boom"))[0] == 1


def test_control_bytes_in_a_run_name_never_reach_the_report(tmp_path):
    runs = tmp_path / "runs"
    run = _law_run(runs, "a")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "id": "evil\x1b[2J\x07name", "intervention": "g\x1brpo"}))
    out = CliRunner().invoke(app, ["compare", str(runs), "--out", str(tmp_path / "out")])
    assert out.exit_code == 0, out.output
    for name in ("report.md", "report.html"):
        text = (tmp_path / "out" / name).read_text()
        assert "\x1b" not in text and "\x07" not in text and "x1b" in text[text.index("evil"):][:12]
