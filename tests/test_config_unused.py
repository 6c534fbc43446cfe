"""config_unused: the table of settings a run never reads names real settings, and follows the
kinds that decide it (the CLI rows are in test_bad_input.py)."""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace

from entropyctl.config import ProbeConfig, RolloutConfig, TrainConfig, TrackingConfig
from entropyctl.config_task import CurriculumConfig, TaskConfig
from entropyctl.config_unused import override_key, unused_settings


def _every_case() -> list[TrainConfig]:
    base = TrainConfig()
    return [base,
            replace(base, model=replace(base.model, kind="hf", path="/ckpt")),
            replace(base, task=TaskConfig(kind="jsonl", path="p.jsonl")),
            replace(base, task=TaskConfig(kind="curriculum", curriculum=CurriculumConfig(kind="jsonl", b={"val_size": 8}),
                                          path="p.jsonl")),
            replace(base, rollout=RolloutConfig(backend="torch", dynamic_sampling=True),
                    tracking=TrackingConfig(wandb=True)),
            replace(base, probe=ProbeConfig(every=0))]


def _is_setting(key: str) -> bool:
    node = TrainConfig()
    for part in key.split("."):
        if not (is_dataclass(node) and part in {f.name for f in fields(node)}):
            return False
        node = getattr(node, part)
    return True


def test_every_key_the_table_names_is_a_setting():
    """A renamed field would silently leave the table's key unchecked."""
    for cfg in _every_case():
        for key in unused_settings(cfg):
            assert _is_setting(key), key
    assert not _is_setting("model.hiden") and not _is_setting("task.curriculum.nope")


def test_the_kinds_decide_what_is_unused():
    lab, hf, jsonl, phases, on, off = (unused_settings(c) for c in _every_case())
    assert "model.hidden" not in lab and "model.hidden" in hf and "model.pretrain_steps" in hf
    assert "task.val_size" in lab and "task.val_size" not in jsonl and "task.n_val" in jsonl
    # a curriculum's phases are built as curriculum.kind: its keys are that task's
    assert "task.n_val" in phases and "task.prompt_key" not in phases and "task.curriculum.b" not in phases
    assert "task.curriculum.b" in lab
    assert {"rollout.max_gen_batches", "tracking.project"} <= set(lab)
    assert not {"rollout.max_gen_batches", "tracking.project", "probe.pass_k_max"} & set(on)
    assert "probe.pass_k_max" in off and "probe.every" not in off


def test_override_keys():
    assert override_key("model.hidden=128") == "model.hidden"
    assert override_key("++probe.kl_samples=2") == "probe.kl_samples"
    assert [override_key(o) for o in ("model=hf", "~model.hidden", "hydra.launcher.n_jobs=2", "seed")] == [None] * 4
