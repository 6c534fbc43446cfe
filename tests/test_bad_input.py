"""Every bad input of issue 6, table-driven: the real `entropyctl` process answers with one line
naming the problem (and its fix), exit code 2, no traceback, and leaves every file as it was.

Each row gets its own copy of a small world (a runs folder with finished and broken runs, a
few bad log files) and its snapshot is compared after the command. The table runs in-process
through the real Typer app (a subprocess costs ~1 s of imports per row); one row of each kind,
plus the --debug ones, also run as real processes.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from entropyctl.cli.main import app
from entropyctl.runstore.store import create_run

RUN = "grpo__lab__s0__20250101-000000"


@dataclass(frozen=True)
class Row:
    id: str
    args: tuple[str, ...]  # "{W}" is the row's own world folder
    says: tuple[str, ...]  # substrings of the one line
    code: int = 2


T = ("train", "experiment=smoke", "runs_dir={W}/runs", "progress=false")
ROWS = [
    # -- train: overrides (checked by composing every job before anything runs)
    Row("unknown-key", (*T, "foo=1"), ("unknown config key 'foo'", "top-level keys", "seed")),
    Row("unknown-nested-key", (*T, "optim.lrr=1"), ("unknown config key 'optim.lrr'", "keys of optim", "lr")),
    Row("added-unknown-key", (*T, "+foo=1"), ("unknown config key 'foo'",)),
    Row("wrong-type-int", (*T, "seed=abc"), ("seed takes an integer", "'abc'")),
    Row("wrong-type-float", (*T, "optim.lr=fast"), ("optim.lr takes a number", "'fast'")),
    Row("wrong-type-bool", (*T, "progress=maybe"), ("progress takes true or false",)),
    Row("unknown-intervention", (*T, "intervention=nope"),
        ("unknown intervention 'nope'", "valid ones:", "clip_cov", "entropy_bonus", "grpo")),
    Row("unknown-intervention-in-stack", (*T, "intervention=[entropy_bonus,nope]"),
        ("unknown intervention 'nope'", "valid ones:", "grpo")),
    Row("unknown-task", (*T, "task=nope"), ("unknown task 'nope'", "valid ones: addition")),
    Row("unknown-experiment", (*T, "experiment=nope"), ("unknown experiment 'nope'", "smoke")),
    Row("two-surrogates", (*T, "intervention=[grpo,clip_cov]"),
        ("two surrogate interventions at once", "grpo and clip_cov", "pick one")),
    Row("unknown-intervention-param", (*T, "intervention=clip_cov", "intervention.clip_cov.nope=1"),
        ("intervention 'clip_cov' has no parameter 'nope'", "frac")),
    Row("wrong-type-intervention-param", (*T, "intervention=clip_cov", "intervention.clip_cov.frac=abc"),
        ("intervention.clip_cov.frac=abc", "takes a number")),
    Row("param-of-unselected-intervention", (*T, "intervention.clip_cov.frac=0.1"),
        ("intervention 'clip_cov' is not selected", "intervention=clip_cov")),
    Row("missing-model-path", (*T, "model.path={W}/no-such-model"),
        ("no-such-model", "not a local Hugging Face checkpoint", "leave model.path unset")),
    Row("hf-model-without-path", (*T, "model=hf"), ("model=hf needs the checkpoint", "model.path=")),
    Row("sweep-escapes-runs", (*T, "sweep=../evil"), ("invalid sweep name '../evil'", "no '..'")),
    Row("model-name-escapes-runs", (*T, "model.name=../../x"), ("invalid model.name",)),
    Row("sweep-with-bad-value", ("train", "-m", "experiment=smoke", "runs_dir={W}/runs", "seed=0,x"),
        ("seed takes an integer", "'x'")),
    Row("sweep-without-m", (*T, "seed=1,2"), ("is a sweep", "add -m")),
    Row("group-of-one", (*T, "rollout.group_size=1"), ("rollout.group_size=1: a group-relative advantage needs two",
                                                        "give rollout.group_size>=2")),
    Row("more-minibatches-than-rows", (*T, "rollout.prompts_per_round=4", "rollout.group_size=2", "optim.minibatches=9"),
        ("'optim.minibatches=9' would be ignored: a round has 8 completions", "give optim.minibatches<=8")),
    Row("more-minibatches-than-groups", (*T, "rollout.prompts_per_round=4", "optim.shuffle=groups", "optim.minibatches=5"),
        ("'optim.minibatches=5' would be ignored: a round has 4 groups", "give optim.minibatches<=4")),
    Row("unparsable-override", (*T, "seed=[1,"), ("cannot parse the value of seed in 'seed=[1,'", "quote it")),
    Row("not-key-value", (*T, "seed 1"), ("cannot parse the override", "overrides look like key=value")),
    Row("home-unquoted", (*T, "model.path=~/ckpt"), ("cannot parse the value of model.path in 'model.path=~/ckpt'",
                                                     """quote it, as 'model.path="~/ckpt"' (entropyctl expands the ~)""")),
    Row("unknown-launcher", (*T, "hydra/launcher=nope"), ("unknown launcher 'nope'", "joblib")),
    Row("out-of-range", (*T, "rounds=0"), ("rounds=0 is out of range", "rounds>=1")),
    # -- resume
    Row("resume-finished-run", ("resume", f"{{W}}/runs/sw/{RUN}"), ("run is finished", "nothing to resume")),
    Row("resume-not-a-run", ("resume", "{W}/runs"), ("not a run directory",)),
    Row("resume-corrupted-metrics", ("resume", "{W}/runs/broken/bad-metrics"),
        ("metrics.jsonl:5", "corrupted metrics line")),
    Row("resume-corrupted-run-json", ("resume", "{W}/runs/broken/bad-run-json"), ("corrupted run.json",)),
    # -- fit-law (entropyctl/cli/fit_law.py)
    Row("fit-law-empty-file", ("fit-law", "{W}/logs/empty.jsonl"), ("empty.jsonl", "empty")),
    Row("fit-law-truncated-file", ("fit-law", "{W}/logs/truncated.jsonl"), ("truncated.jsonl",)),
    Row("fit-law-wrong-format", ("fit-law", "{W}/logs/wrong.png"), ("wrong.png",)),
    Row("fit-law-nan-file", ("fit-law", "{W}/logs/nan.csv"), ("NaN",)),
    Row("fit-law-corrupted-metrics", ("fit-law", "{W}/runs/broken/bad-metrics"), ("corrupted metrics line",)),
    Row("fit-law-corrupted-run-json", ("fit-law", "{W}/runs/broken/bad-run-json"), ("corrupted run.json",)),
    # -- compare (entropyctl/cli/compare.py)
    Row("compare-no-runs", ("compare", "{W}/logs"), ("no runs",)),
    Row("compare-corrupted-metrics", ("compare", "{W}/runs/broken/bad-metrics"), ("corrupted metrics line",)),
    Row("compare-corrupted-run-json", ("compare", "{W}/runs/broken/bad-run-json"), ("corrupted run.json",)),
    # -- train: ranges and enums, refused at composition by the config dataclasses (issue 9)
    Row("grad-clip-negative", (*T, "optim.grad_clip=-1"), ("optim.grad_clip=-1.0", "positive", "optim.grad_clip=1.0")),
    Row("temperature-negative", (*T, "rollout.temperature=-1"), ("rollout.temperature=-1.0", "positive")),
    Row("temperature-zero", (*T, "rollout.temperature=0"), ("rollout.temperature=0.0", "positive")),
    Row("group-size-zero", (*T, "rollout.group_size=0"), ("rollout.group_size=0", "rollout.group_size>=2")),
    Row("prompts-zero", (*T, "rollout.prompts_per_round=0"), ("rollout.prompts_per_round=0", ">=1")),
    Row("max-gen-batches-zero", (*T, "rollout.max_gen_batches=0"), ("rollout.max_gen_batches=0", ">=1")),
    Row("minibatches-zero", (*T, "optim.minibatches=0"), ("optim.minibatches=0", "optim.minibatches>=1")),
    Row("micro-batches-zero", (*T, "optim.micro_batches=0"), ("optim.micro_batches=0", ">=1")),
    Row("epochs-zero", (*T, "optim.epochs=0"), ("optim.epochs=0", ">=1")),
    Row("eval-every-zero", (*T, "eval.every=0"), ("eval.every=0", "eval.every>=1")),
    Row("max-new-tokens-zero", (*T, "task.max_new_tokens=0"), ("task.max_new_tokens=0", ">=1")),
    Row("n-val-zero", (*T, "task.n_val=0"), ("task.n_val=0", ">=1")),
    Row("prompt-file-on-the-lab", (*T, "task.path={W}/logs/empty.jsonl"),
        ("task.path is set but the task is the lab (task.kind=addition)", "add task=jsonl")),
    Row("probes-with-too-few-val-prompts", (*T, "task.n_val=2", "probe.every=1"),
        ("the probes need 4 validation prompts (CKA) and the task has 2", "probe.every=0")),
    Row("digits-zero", (*T, "task.digits=0"), ("task.digits=0", ">=1")),
    Row("lr-nan", (*T, "optim.lr=nan"), ("optim.lr=nan", "positive", "optim.lr=")),
    Row("lr-inf", (*T, "optim.lr=inf"), ("optim.lr=inf", "positive")),
    Row("lr-negative", (*T, "optim.lr=-0.1"), ("optim.lr=-0.1", "positive")),
    Row("beta1-one", (*T, "optim.beta1=1"), ("optim.beta1=1.0", "[0, 1)")),
    Row("beta2-negative", (*T, "optim.beta2=-0.5"), ("optim.beta2=-0.5", "[0, 1)")),
    Row("weight-decay-negative", (*T, "optim.weight_decay=-1"), ("optim.weight_decay=-1.0", "[0, inf)")),
    Row("loss-scale-zero", (*T, "optim.loss_scale=0"), ("optim.loss_scale=0.0", "positive")),
    Row("agg-mode-underscore", (*T, "optim.agg_mode=token_mean"), ("optim.agg_mode=token_mean", "token-mean")),
    Row("agg-mode-unknown", (*T, "optim.agg_mode=sum"), ("optim.agg_mode=sum", "choose one")),
    Row("shuffle-unknown", (*T, "optim.shuffle=prompts"), ("optim.shuffle=prompts", "rows, groups")),
    Row("estimator-unknown", (*T, "advantage.estimator=ppo"), ("advantage.estimator=ppo", "grpo")),
    Row("adv-eps-negative", (*T, "advantage.eps=-1"), ("advantage.eps=-1.0", "[0, inf)")),
    Row("seed-huge", (*T, "seed=99999999999999999999"), ("seed=99999999999999999999", "[0, 4294967295]")),
    Row("seed-negative", (*T, "seed=-1"), ("seed=-1", "seed=0")),
    Row("threads-negative", (*T, "threads=-2"), ("threads=-2", "threads>=0")),
    Row("checkpoint-every-negative", (*T, "checkpoint_every=-1"), ("checkpoint_every=-1", ">=0")),
    Row("checkpoint-keep-zero", (*T, "checkpoint_keep=0"), ("checkpoint_keep=0", ">=1")),
    Row("heads-not-dividing", (*T, "model.heads=3"), ("model.hidden=32", "model.heads=3")),
    Row("layers-zero", (*T, "model.layers=0"), ("model.layers=0", ">=1")),
    Row("attn-impl-unknown", (*T, "model.attn_impl=fast"), ("model.attn_impl=fast", "eager")),
    Row("pretrain-lr-zero", (*T, "model.pretrain_lr=0"), ("model.pretrain_lr=0.0", "positive")),
    Row("model-kind-unknown", (*T, "model.kind=gguf"), ("model.kind=gguf", "not installed", "lab")),
    Row("task-kind-unknown", (*T, "task.kind=chess"), ("task.kind=chess", "addition")),
    Row("backend-vllm", (*T, "rollout.backend=vllm"), ("rollout=vllm needs vLLM", "not installed", "pip install")),
    Row("empty-runs-dir", (*T, "runs_dir="), ("runs_dir is empty",)),
    # -- train: a setting typed on the command line that this run would never read
    Row("lab-architecture-on-a-checkpoint", (*T, "model=hf", "model.path={W}/ckpt", "model.hidden=128"),
        ("'model.hidden=128' would be ignored", "from the checkpoint", "drop it")),
    Row("vllm-setting-with-torch", (*T, "rollout.gpu_memory_utilization=0.3"),
        ("'rollout.gpu_memory_utilization=0.3' would be ignored", "rollout=vllm")),
    Row("correction-with-torch", (*T, "rollout.correction=token_tis"),
        ("'rollout.correction=token_tis' would be ignored", "every correction weight is 1")),
    Row("refills-without-dynamic-sampling", (*T, "rollout.max_gen_batches=2"),
        ("'rollout.max_gen_batches=2' would be ignored", "rollout.dynamic_sampling=true")),
    Row("micro-batches-beside-token-budget", (*T, "optim.micro_batch_tokens=512", "optim.micro_batches=2"),
        ("'optim.micro_batches=2' would be ignored", "micro_batch_tokens")),
    Row("wandb-setting-without-wandb", (*T, "tracking.project=mine"),
        ("'tracking.project=mine' would be ignored", "tracking.wandb=true")),
    Row("probe-setting-with-probes-off", (*T, "probe.every=0", "probe.pass_k_max=8"),
        ("'probe.pass_k_max=8' would be ignored", "probe.every=0")),
    Row("prompt-file-key-on-the-lab", (*T, "task.val_size=16"),
        ("'task.val_size=16' would be ignored", "add task=jsonl")),
    Row("phase-setting-without-curriculum", (*T, "task.curriculum.switch_round=2"),
        ("'task.curriculum.switch_round=2' would be ignored", "task=curriculum")),
    Row("ignored-in-one-sweep-job", ("train", "-m", *T[1:], "rollout.dynamic_sampling=true,false",
                                     "rollout.max_gen_batches=2"),
        ("'rollout.max_gen_batches=2' would be ignored", "sweep job", "dynamic_sampling=False")),
    # -- train: intervention parameters (each dataclass's __post_init__)
    Row("grpo-eps-low", (*T, "intervention.grpo.eps_low=1.5"), ("intervention.grpo.eps_low=1.5", "[0, 1)", "=0.2")),
    Row("grpo-eps-high", (*T, "intervention.grpo.eps_high=-0.2"), ("intervention.grpo.eps_high=-0.2", ">= 0")),
    Row("grpo-clip-c", (*T, "intervention.grpo.clip_c=0.5"), ("intervention.grpo.clip_c=0.5", "> 1", "=3.0")),
    Row("clip-cov-frac", (*T, "intervention=clip_cov", "intervention.clip_cov.frac=5"),
        ("intervention.clip_cov.frac=5", "(0, 1]", "frac=0.02")),
    Row("clip-cov-band", (*T, "intervention=clip_cov", "intervention.clip_cov.cov_high=0.5"),
        ("intervention.clip_cov.cov_high=0.5", "cov_low")),
    Row("clip-cov-scope", (*T, "intervention=clip_cov", "intervention.clip_cov.scope=epoch"),
        ("intervention.clip_cov.scope=epoch", "micro_batch")),
    Row("kl-cov-frac", (*T, "intervention=kl_cov", "intervention.kl_cov.frac=0"), ("intervention.kl_cov.frac=0", "=0.05")),
    Row("kl-cov-coef", (*T, "intervention=kl_cov", "intervention.kl_cov.coef=-1"), ("intervention.kl_cov.coef=-1", ">= 0")),
    Row("clip-higher-eps", (*T, "intervention=clip_higher", "intervention.clip_higher.eps_high=-1"),
        ("intervention.clip_higher.eps_high=-1", "=0.28")),
    Row("gppo-clip-c", (*T, "intervention=gppo", "intervention.gppo.clip_c=1"), ("intervention.gppo.clip_c=1", "> 1")),
    Row("gppo-sft-coef", (*T, "intervention=gppo", "intervention.gppo.sft_coef=-0.1"), ("sft_coef=-0.1", ">= 0")),
    Row("entropy-bonus-nan", (*T, "intervention=entropy_bonus", "intervention.entropy_bonus.coef=nan"),
        ("intervention.entropy_bonus.coef=nan", "finite", "coef=0.02")),
    Row("kl-anchor-kind", (*T, "intervention=kl_anchor", "intervention.kl_anchor.kind=full"),
        ("intervention.kl_anchor.kind=full", "low_var_kl")),
    Row("kl-anchor-coef", (*T, "intervention=kl_anchor", "intervention.kl_anchor.coef=-1"), ("coef=-1", "=0.1")),
    # -- task=curriculum (the plasticity probe) and the lab settings its phases switch
    Row("curriculum-switch-zero", (*T, "task=curriculum", "task.curriculum.switch_round=0"),
        ("task.curriculum.switch_round=0", ">=1")),
    Row("curriculum-switch-not-before-end", (*T, "task=curriculum", "task.curriculum.switch_round=3"),
        ("task.curriculum.switch_round=3", "rounds=3", "below rounds")),
    Row("curriculum-threshold", (*T, "task=curriculum", "task.curriculum.threshold=1.5"),
        ("task.curriculum.threshold=1.5", "(0, 1]")),
    Row("curriculum-threshold-zero", (*T, "task=curriculum", "task.curriculum.threshold=0"),
        ("task.curriculum.threshold=0.0", "(0, 1]")),
    Row("curriculum-same-phases", (*T, "task=curriculum", "task.curriculum.b.reward_formats=null"),
        ("task.curriculum.a and task.curriculum.b give the same task", "task.curriculum.b.")),
    Row("curriculum-phase-key", (*T, "task=curriculum", "+task.curriculum.b.nope=1"),
        ("task.curriculum.b.nope", "not a task setting")),
    Row("curriculum-phase-type", (*T, "task=curriculum", "+task.curriculum.b.digits=abc"),
        ("task.curriculum.b", "'abc'")),
    Row("curriculum-phase-operands", (*T, "task=curriculum", "task.curriculum.b.operands=[50,200]"),
        ("task.curriculum.b", "task.operands=[50, 200]", "hi <= 99")),
    Row("curriculum-kind", (*T, "task=curriculum", "task.curriculum.kind=curriculum"),
        ("task.curriculum.kind=curriculum", "task.curriculum.kind=addition")),
    Row("reward-formats-unknown", (*T, "task.reward_formats=[nope]"), ("task.reward_formats=['nope']", "equals")),
    Row("operands-reversed", (*T, "task.operands=[9,3]"), ("task.operands=[9, 3]", "lo <= hi")),
    Row("sft-refresh-every", (*T, "intervention=sft_refresh", "intervention.sft_refresh.every=0"),
        ("intervention.sft_refresh.every=0", "=5")),
    Row("forking-frac", (*T, "intervention=forking_tokens", "intervention.forking_tokens.frac=1.5"),
        ("intervention.forking_tokens.frac=1.5", "(0, 1]")),
    Row("forking-normalize", (*T, "intervention=forking_tokens", "intervention.forking_tokens.normalize_by=some"),
        ("normalize_by", "selected")),
    Row("hicra-alpha", (*T, "intervention=hicra", "intervention.hicra.alpha=2"), ("intervention.hicra.alpha=2", "[0, 1]")),
    Row("dr-grpo-scale", (*T, "intervention=dr_grpo", "intervention.dr_grpo.loss_scale=0"), ("loss_scale=0", "> 0")),
    # -- train: sweeps (every job checked before the first starts) and the launcher
    Row("sweep-bad-second-job", ("train", "-m", *T[1:], "seed=0,1", "optim.lr=0.1,-1"),
        ("optim.lr=-1.0", "positive", "sweep job")),
    Row("sweep-bad-product-job", ("train", "-m", *T[1:], "rounds=1,0", "seed=0,1"), ("rounds=0", "sweep job")),
    Row("sweep-second-job-too-few-probe-prompts", ("train", "-m", *T[1:], "probe.every=1", "task.n_val=8,2"),
        ("the probes need 4 validation prompts (CKA) and the task has 2", "sweep job")),
    Row("n-jobs-zero", ("train", "-m", *T[1:], "hydra/launcher=joblib", "hydra.launcher.n_jobs=0", "seed=0,1"),
        ("hydra.launcher.n_jobs=0", "N >= 1")),
    # -- pretrain: the same checks
    Row("pretrain-unknown-key", ("pretrain", "experiment=smoke", "runs_dir={W}/runs", "foo=1"), ("unknown config key 'foo'",)),
    Row("pretrain-bad-steps", ("pretrain", "experiment=smoke", "runs_dir={W}/runs", "model.pretrain_steps=-1"),
        ("model.pretrain_steps=-1", ">=0")),
    Row("pretrain-bad-hidden", ("pretrain", "experiment=smoke", "runs_dir={W}/runs", "model.hidden=0"),
        ("model.hidden=0", ">=1")),
    Row("pretrain-bad-format-share", ("pretrain", "experiment=smoke", "runs_dir={W}/runs",
                                      "task.formats=[{name:a,prefix:'=',share:-1,correct:1}]"), ("share=-1", ">= 0")),
    Row("pretrain-hf-without-path", ("pretrain", "runs_dir={W}/runs", "model=hf"), ("model=hf needs the checkpoint",)),
    # -- usage errors: one line, not Typer's usage box
    Row("usage-unknown-command", ("nope",), ("no such command 'nope'", "--help")),
    Row("usage-fit-law-unknown-option", ("fit-law", "--nope", "{W}/logs"), ("no such option: --nope",)),
    Row("usage-compare-no-paths", ("compare",), ("missing", "paths", "entropyctl compare --help")),
    Row("usage-resume-no-dir", ("resume",), ("missing", "entropyctl resume --help")),
    Row("usage-compare-last-k", ("compare", "{W}/runs/sw", "--last-k", "0"), ("'--last-k'",)),
    Row("usage-fit-law-level-text", ("fit-law", "{W}/logs/two.csv", "--level", "high"), ("'--level'",)),
    # -- resume: more
    Row("resume-missing-dir", ("resume", "{W}/runs/sw/nope"), ("not a run directory",)),
    Row("resume-a-file", ("resume", "{W}/logs/empty.jsonl"), ("not a run directory",)),
    # -- fit-law: options and files
    Row("fit-law-two-reward-columns", ("fit-law", "{W}/logs/two.csv"), ("column 'reward' appears 2 times",)),
    Row("fit-law-unknown-by", ("fit-law", "{W}/runs/sw", "--by", "nope.key"), ("--by nope.key", "no run has")),
    Row("fit-law-early-out-of-range", ("fit-law", "{W}/runs/sw", "--early", "1.5"), ("--early 1.5", "(0, 1)")),
    Row("fit-law-level-out-of-range", ("fit-law", "{W}/runs/sw", "--level", "1"), ("--level 1.0", "0.95")),
    Row("fit-law-bootstrap-negative", ("fit-law", "{W}/runs/sw", "--bootstrap", "-1"), ("--bootstrap N",)),
    Row("fit-law-perf-scale-zero", ("fit-law", "{W}/runs/sw", "--perf-scale", "0"), ("--perf-scale 0.0", "positive")),
    Row("fit-law-bad-where", ("fit-law", "{W}/runs/sw", "--where", "split"), ("--where 'split'", "KEY=VALUE")),
    Row("fit-law-bad-window", ("fit-law", "{W}/runs/sw", "--window", "a:b"), ("window",)),
    Row("fit-law-plot-type", ("fit-law", "{W}/runs/sw", "--plot", "{W}/law.xyz"), ("unsupported image type",)),
    Row("fit-law-plot-folder", ("fit-law", "{W}/runs/sw", "--plot", "{W}/no/law.png"), ("does not exist",)),
    Row("fit-law-missing-path", ("fit-law", "{W}/nope.csv"), ("no such file or directory",)),
    Row("fit-law-unknown-entropy-key", ("fit-law", "{W}/runs/sw", "--entropy", "nope"), ("nope", "--entropy KEY")),
    Row("fit-law-clip-as-entropy", ("fit-law", "{W}/logs/nan.csv", "--entropy", "clip/frac"), ("not an entropy",)),
    Row("fit-law-logging-steps-zero", ("fit-law", "{W}/runs/sw", "--logging-steps", "0"), ("--logging-steps 0",)),
    Row("fit-law-damaged-wandb-file", ("fit-law", "{W}/logs/run-x.wandb"), ("run-x.wandb", "W&B")),
    Row("fit-law-not-a-wandb-file", ("fit-law", "{W}/logs/wrong.png", "--format", "wandb"), ("wrong.png", "wandb")),
    Row("fit-law-bad-wandb-url", ("fit-law", "wandb://only/two"), ("wandb://ENTITY/PROJECT/RUN_ID",)),
    # -- compare: more
    Row("compare-unknown-by", ("compare", "{W}/runs/sw", "--by", "nope.key"), ("--by nope.key", "no run has")),
    Row("compare-unknown-baseline", ("compare", "{W}/runs/sw", "--baseline", "nope"), ("baseline 'nope'", "--baseline")),
    Row("compare-out-is-a-file", ("compare", "{W}/runs/sw", "--out", "{W}/logs/empty.jsonl"), ("is a file",)),
    Row("compare-missing-path", ("compare", "{W}/nope"), ("no such file or directory",)),
    Row("compare-empty-log", ("compare", "{W}/logs/empty.jsonl"), ("empty.jsonl", "empty")),
    Row("compare-only-unfinished", ("compare", "{W}/runs/unfinished"), ("none of the 1 runs", "--include-incomplete")),
    # -- compare: --group-by on logs and runs (issue 13)
    Row("compare-group-by-no-group", ("compare", "{W}/runs/sw", "--group-by", "grpo.*"), ("no capture group", "(.*)")),
    Row("compare-group-by-bad-regex", ("compare", "{W}/runs/sw", "--group-by", "(grpo"), ("not a regular expression",)),
    Row("compare-group-by-no-match", ("compare", "{W}/runs/sw", "--group-by", "(ppo)-s\\d+"),
        ("1 run(s) match no group", RUN)),
    Row("compare-group-by-missing-mapping", ("compare", "{W}/runs/sw", "--group-by", "{W}/nope.json"),
        ("no such mapping file",)),
    Row("compare-mapping-names-missing-file", ("compare", "{W}/runs/sw", "--group-by", "{W}/logs/gone.json"),
        ("gone.jsonl", "does not exist")),
    Row("compare-mapping-misses-our-runs", ("compare", "{W}/runs/sw", "{W}/logs/good.csv", "--group-by",
                                            "{W}/logs/partial.yaml"), ("match no group", RUN, "mapping file")),
    Row("compare-by-and-group-by", ("compare", "{W}/runs/sw", "--by", "seed", "--group-by", "(.*)"),
        ("--by and --group-by",)),
]


def _make_run(runs: Path, sweep: str, name: str, status: str) -> Path:
    w = create_run(runs, sweep, name, "seed: 0\n", ["seed=0"], {"intervention": "grpo", "seed": 0,
                                                               "rounds_planned": 12})
    for r in range(12):
        H = 0.9 * math.exp(-r / 6) + 0.05
        w.append({"round": r, "entropy/seqmean": H, "eval/acc": 0.9 - 0.2 * math.exp(H),
                  "reward/mean": 0.85 - 0.2 * math.exp(H)})
    w.update(rounds_done=12)
    w.finish(status)
    w.close()
    return w.path


def _world(root: Path) -> Path:
    runs = root / "runs"
    _make_run(runs, "sw", RUN, "finished")
    bad = _make_run(runs, "broken", "bad-metrics", "interrupted")
    lines = (bad / "metrics.jsonl").read_text().splitlines(keepends=True)
    lines[4] = '{"round": 4, "entropy/seqm\n'  # a torn line in the middle: not ours to repair
    (bad / "metrics.jsonl").write_text("".join(lines))
    bad = _make_run(runs, "broken", "bad-run-json", "interrupted")
    (bad / "run.json").write_text('{"id": "bad-run-json", "sta')
    logs = root / "logs"
    logs.mkdir()
    (logs / "empty.jsonl").write_text("")
    (logs / "truncated.jsonl").write_text('{"step": 1, "entropy": 0.5, "rew')
    (logs / "wrong.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")
    (logs / "run-x.wandb").write_bytes(b":W&B\xe1\xbe\x00\x07\x00\x00\x00\x05\x00\x01garbage")  # a damaged W&B run
    (logs / "nan.csv").write_text("step,entropy,reward\n1,nan,nan\n2,nan,nan\n3,nan,nan\n")
    (logs / "two.csv").write_text("step,entropy,reward,reward\n" + "".join(
        f"{s},{1 / (s + 1)},{0.1 * s},{0.2}\n" for s in range(8)))
    _make_run(runs, "unfinished", "grpo__lab__s1__x", "interrupted")
    (logs / "gone.json").write_text('{"gone.jsonl": "a"}')
    (logs / "good.csv").write_text("step,entropy,reward\n" + "".join(f"{s},{1 / (s + 1)},{0.1 * s}\n" for s in range(6)))
    (logs / "partial.yaml").write_text("good.csv: a\n")  # covers the log, not the run beside it
    (root / "ckpt").mkdir()  # what the composition checks of a checkpoint (loading comes later)
    (root / "ckpt" / "config.json").write_text("{}")
    return root


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with its kind, size, mtime and content hash."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
        out[str(p.relative_to(root))] = (p.is_dir(), st.st_size if p.is_file() else 0, st.st_mtime_ns, digest)
    return out


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "ENTROPYCTL_DEBUG")}
    env["COLUMNS"] = "400"  # judge lines, not terminal wrapping
    env.update(extra)
    return env


def entropyctl(*args: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "entropyctl", *args], capture_output=True, text=True,
                          timeout=timeout, env=env or _env())


def _world_copy(base: Path, dest: Path) -> Path:
    shutil.copytree(base, dest, symlinks=True, copy_function=shutil.copy2)
    return dest


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return _world(tmp_path_factory.mktemp("world"))


def _check(row: Row, code: int, text: str, before: dict, after: dict) -> None:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert code == row.code, text
    assert "Traceback" not in text and len(lines) == 1, text
    for part in row.says:
        assert part in lines[0], (part, lines[0])
    assert after == before, "the command changed files"


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row: Row, world: Path, tmp_path: Path):
    """In-process through the real Typer app (CliRunner): the whole table in seconds."""
    w = _world_copy(world, tmp_path / "w")
    before = snapshot(w)
    out = CliRunner().invoke(app, [a.replace("{W}", str(w)) for a in row.args])
    _check(row, out.exit_code, out.output, before, snapshot(w))


# One row of each kind again as a real process: what a user sees, exit status included.
PROCESS_ROWS = ["unknown-key", "missing-model-path", "resume-corrupted-metrics", "compare-corrupted-run-json"]


def test_bad_input_in_a_real_process(world: Path, tmp_path: Path):
    rows = [r for r in ROWS if r.id in PROCESS_ROWS]
    jobs = []
    for row in rows:
        w = _world_copy(world, tmp_path / row.id)
        jobs.append((row, w, snapshot(w)))

    def one(job):
        row, w, _ = job
        return entropyctl(*[a.replace("{W}", str(w)) for a in row.args])

    with ThreadPoolExecutor(max_workers=2) as pool:
        outs = list(pool.map(one, jobs))
    for (row, w, before), out in zip(jobs, outs):
        _check(row, out.returncode, out.stdout + out.stderr, before, snapshot(w))


def test_debug_shows_the_traceback(tmp_path):
    for env, args in ((_env(), ("--debug", "train", "foo=1")), (_env(HYDRA_FULL_ERROR="1"), ("train", "seed=x"))):
        out = entropyctl(*args, f"runs_dir={tmp_path}/runs", env=env)
        assert out.returncode == 2 and "Traceback" in out.stderr, out.stderr
        assert out.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not (tmp_path / "runs").exists()


def test_valid_stacks_and_sweeps_still_compose(tmp_path):
    out = entropyctl("train", "--cfg", "job", "intervention=[clip_cov,entropy_bonus]",
                     "intervention.clip_cov.frac=0.1", "seed=3", f"runs_dir={tmp_path}")
    assert out.returncode == 0, out.stderr
    assert "frac: 0.1" in out.stdout and "coef:" in out.stdout
    assert list(tmp_path.iterdir()) == []
