"""The Hydra side of `entropyctl train` / `pretrain`: the CLI forwards its trailing words here
as Hydra overrides, so `-m` sweeps, launchers and `--cfg job` work as Hydra users expect."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from entropyctl.config import TrainConfig, register_schemas

# conf/ sits at the repository root, beside the package (editable install).
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def _typed(cfg: DictConfig) -> TrainConfig:
    return OmegaConf.to_object(cfg)


def _user_error(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def _train_task(cfg: DictConfig) -> None:
    from entropyctl.interventions import InterventionError
    from entropyctl.runstore import RunStoreError
    from entropyctl.train import run

    typed = _typed(cfg)
    overrides = list(HydraConfig.get().overrides.task)
    try:
        run(typed, OmegaConf.to_yaml(cfg, resolve=True), overrides)
    except (InterventionError, RunStoreError, FileNotFoundError) as e:
        _user_error(str(e))


def _pretrain_task(cfg: DictConfig) -> None:
    from entropyctl.train import resolve_model_path

    resolve_model_path(_typed(cfg))


TASKS = {"train": _train_task, "pretrain": _pretrain_task}


def run_hydra(command: str, args: list[str]) -> int:
    register_schemas()
    sys.argv = [f"entropyctl {command}", *args]
    app = hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")(TASKS[command])
    app()
    return 0
