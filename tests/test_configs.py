"""Every conf/intervention/*.yaml composes with Hydra and builds its intervention; stacks of
different stages build; two surrogates are a config error naming both."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from entropyctl.config import TrainConfig, register_schemas
from entropyctl.interventions import REGISTRY, InterventionError, build, load_all

CONF = Path(__file__).resolve().parent.parent / "conf"
YAMLS = sorted(p.stem for p in (CONF / "intervention").glob("*.yaml"))


def compose_train(*overrides: str) -> TrainConfig:
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return OmegaConf.to_object(compose("config", overrides=list(overrides)))


def test_every_registered_intervention_has_a_yaml_and_vice_versa():
    assert YAMLS == sorted(load_all())


@pytest.mark.parametrize("name", YAMLS)
def test_each_yaml_composes_and_builds(name):
    cfg = compose_train(f"intervention={name}")
    assert list(cfg.intervention) == [name]  # nested under its own name, so files stack
    pipe = build(cfg.intervention)
    assert name in pipe.names
    assert isinstance(pipe.configs[name], REGISTRY[name].config_cls)


@pytest.mark.parametrize("name", YAMLS)
def test_each_yaml_lists_every_parameter_so_plain_overrides_work(name):
    import dataclasses

    fields = {f.name for f in dataclasses.fields(REGISTRY[name].config_cls)}
    assert set(compose_train(f"intervention={name}").intervention[name]) == fields
    field = sorted(fields)[0]
    # Hydra refuses keys the composed config lacks unless prefixed with '+'
    compose_train(f"intervention={name}", f"intervention.{name}.{field}=null")


def test_each_yaml_names_its_source_in_a_comment():
    for name in YAMLS:
        text = (CONF / "intervention" / f"{name}.yaml").read_text()
        assert text.lstrip().startswith("#"), name


def test_dr_grpo_scale_follows_the_task():
    cfg = compose_train("intervention=dr_grpo")
    assert build(cfg.intervention).settings.loss_scale == float(cfg.task.max_new_tokens)
    cfg = compose_train("intervention=dr_grpo", "task.max_new_tokens=24")
    assert build(cfg.intervention).settings.loss_scale == 24.0


@pytest.mark.parametrize("stack, names", [
    ("[clip_higher,entropy_bonus]", ["clip_higher", "entropy_bonus"]),
    ("[kl_cov,forking_tokens]", ["kl_cov", "forking_tokens"]),
    ("[hicra,sft_refresh,kl_anchor]", ["grpo", "hicra", "sft_refresh", "kl_anchor"]),
    ("[dr_grpo,clip_cov]", ["dr_grpo", "clip_cov"]),
])
def test_stacks_of_different_stages_build(stack, names):
    pipe = build(compose_train(f"intervention={stack}").intervention)
    assert sorted(pipe.names) == sorted(names)


def test_two_surrogates_are_a_clear_config_error():
    cfg = compose_train("intervention=[kl_cov,clip_cov]")
    with pytest.raises(InterventionError) as e:
        build(cfg.intervention)
    assert "kl_cov" in str(e.value) and "clip_cov" in str(e.value)


def test_parameter_overrides_reach_the_dataclass_and_typos_are_refused():
    cfg = compose_train("intervention=kl_cov", "intervention.kl_cov.frac=0.1", "intervention.kl_cov.scope=round")
    pipe = build(cfg.intervention)
    assert pipe.configs["kl_cov"].frac == 0.1 and pipe.scopes == {"round"}
    cfg = compose_train("intervention=kl_cov", "+intervention.kl_cov.fraction=0.1")
    with pytest.raises(InterventionError, match="fraction"):
        build(cfg.intervention)


def test_a_leading_tilde_in_a_path_setting_is_the_home_folder(tmp_path, monkeypatch):
    from entropyctl.config import ModelConfig, TaskConfig, TrainConfig

    monkeypatch.setenv("HOME", str(tmp_path))
    assert ModelConfig(kind="hf", path="~/ckpt").path == str(tmp_path / "ckpt")
    task = TaskConfig(kind="jsonl", path="~/d/train.jsonl", val_path="~/d/val.jsonl", formats=[])
    assert (task.path, task.val_path) == (str(tmp_path / "d/train.jsonl"), str(tmp_path / "d/val.jsonl"))
    cfg = TrainConfig(runs_dir="~/runs", cache_dir="~/cache")
    assert (cfg.runs_dir, cfg.cache_dir) == (str(tmp_path / "runs"), str(tmp_path / "cache"))
    assert ModelConfig(kind="hf", path="ckpt~1").path == "ckpt~1"  # only a leading ~
