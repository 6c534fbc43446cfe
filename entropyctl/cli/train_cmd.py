"""The Hydra side of `entropyctl train` / `pretrain`: the CLI forwards its trailing words here
as Hydra overrides, so `-m` sweeps, launchers and `--cfg job` work as Hydra users expect.

Bad input never reaches `hydra.main` (which prints multi-line errors and exits 1): `validate`
first composes every job of the command with Hydra's compose API and checks what Hydra cannot
(intervention parameters and stacking, model.path, run names), and turns each problem into one
line naming it and its fix, exit code 2, before anything is written. The run itself reports the
same way: exit 3 diverged, 130 interrupted, 1 failed (docs/reliability.md). `--debug` or
HYDRA_FULL_ERROR=1 adds the full traceback.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Callable

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from entropyctl.config import TrainConfig, register_schemas
from entropyctl.errors import BadInput

# The shipped configs: the top-level conf/, reached through the package's conf symlink so that an
# editable install and an installed wheel (which packs conf/ as package data) find them alike.
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

EXIT_BAD_INPUT, EXIT_FAILED, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 1, 3, 130


def debug_enabled() -> bool:
    return os.environ.get("ENTROPYCTL_DEBUG") == "1" or os.environ.get("HYDRA_FULL_ERROR") == "1"


def enable_debug() -> None:
    os.environ["ENTROPYCTL_DEBUG"] = "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"


def _say(msg: str, exc: BaseException | None = None) -> None:
    if exc is not None and debug_enabled():
        traceback.print_exception(exc)
    print(f"error: {msg}", file=sys.stderr, flush=True)


def _user_error(msg: str, exc: BaseException | None = None) -> None:
    _say(msg, exc)
    sys.exit(EXIT_BAD_INPUT)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# ----------------------------------------------------------------------------- validation


def _default_node(path: list[str]) -> Any:
    """The TrainConfig default at a dotted path, or None when there is no such field."""
    node: Any = TrainConfig()
    for part in path:
        if is_dataclass(node) and part in {f.name for f in fields(node)}:
            node = getattr(node, part)
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node


def _keys_hint(parent: list[str]) -> str:
    node = _default_node(parent)
    if not is_dataclass(node):
        return ""
    names = ", ".join(f.name for f in fields(node))
    return f"; keys of {'.'.join(parent)}: {names}" if parent else f"; top-level keys: {names}"


def _options(group: str, message: str) -> list[str]:
    found = re.search(r"Available options in '[^']+':\n((?:\t.*\n?)+)", message)
    if found:
        return [line.strip() for line in found.group(1).splitlines() if line.strip()]
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


_TYPE_WORDS = {"Integer": "an integer", "Float": "a number", "bool": "true or false",
               "Boolean": "true or false", "String": "a string"}


def _explain(exc: BaseException, overrides: list[str]) -> str:
    """One line for a Hydra/OmegaConf composition error: the problem and the fix."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    chain, e = [], exc
    while e is not None and len(chain) < 10:
        chain.append(e)
        e = e.__cause__ or e.__context__
    for e in chain:
        if isinstance(e, BadInput):  # a config dataclass's __post_init__ already said it in one line
            return _first_line(e)
        if isinstance(e, MissingConfigException):
            m = re.search(r"Could not (?:find|load) '([^']+)'", str(e))
            if m and "/" in m.group(1):
                group, option = m.group(1).rsplit("/", 1)
                what = group.split("/")[-1] if group.startswith("hydra/") else group
                hint = " (stack several with intervention=[a,b])" if group == "intervention" else ""
                return (f"unknown {what} '{option}'; valid ones: {', '.join(_options(group, str(e))) or '(none)'}"
                        f"{hint}")
            return _first_line(e)
        if isinstance(e, OverrideParseException):
            return f"cannot parse the override: {_first_line(e)}; overrides look like key=value"
    for e in chain:
        if isinstance(e, (ConfigAttributeError, ConfigKeyError)):
            key = str(getattr(e, "full_key", "") or "")
            path = key.split(".") if key else []
            source = next((o for o in overrides if o.lstrip("+~").split("=")[0].startswith(key)), key)
            if path[:1] == ["intervention"] and len(path) >= 3:
                return _unknown_param(path[1], path[2])
            if path[:1] == ["intervention"] and len(path) == 2:
                return (f"intervention '{path[1]}' is not selected, so '{source}' sets nothing; select it "
                        f"with intervention={path[1]} (or intervention=[grpo,{path[1]}] to stack)")
            return (f"unknown config key '{key}' (in '{source}'); check the spelling{_keys_hint(path[:-1])}")
        if isinstance(e, ValidationError):
            key = str(getattr(e, "full_key", "") or "")
            m = re.search(r"converted to (\w+)|is not a valid (\w+)", str(e))
            wanted = _TYPE_WORDS.get(next(g for g in m.groups() if g), m.group(0)) if m else "another type"
            source = next((o for o in overrides if o.lstrip("+").split("=")[0] == key), key)
            value = source.split("=", 1)[1] if "=" in source else "?"
            example = _default_node(key.split("."))
            eg = f" (default {key}={OmegaConf.to_yaml({'x': example})[3:].strip()})" if example is not None else ""
            return f"wrong type in '{source}': {key} takes {wanted}, not {value!r}{eg}"
    msg = _first_line(exc)
    if msg.startswith("Ambiguous value for argument"):
        o = msg.split("'")[1] if "'" in msg else msg
        key = o.split("=")[0]
        return f"'{o}' is a sweep: add -m to run one job per value, or write {key}=[...] for a list"
    return f"{msg} (entropyctl train --help lists the config groups and their options)"


def _unknown_param(name: str, key: str) -> str:
    from entropyctl.interventions import load_all

    spec = load_all().get(name)
    names = ", ".join(f.name for f in fields(spec.config_cls)) if spec else "(unknown)"
    return f"intervention '{name}' has no parameter '{key}'; its parameters are: {names}"


def _combinations(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The jobs to check: every override at its first value, then each other value of each
    sweep in turn (a product would grow as fast as the sweep)."""
    if not multirun:
        return [overrides]
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parsed = OverridesParser.create().parse_overrides(overrides)
    values: list[list[str]] = []
    for o in parsed:
        if o.is_sweep_override():
            try:
                values.append([f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
            except HydraException:  # glob(...) needs Hydra's config loader: Hydra checks it
                values.append([])
        else:
            values.append([o.input_line])
    base = [v[0] for v in values if v]
    combos = [base]
    for i, vs in enumerate(values):
        for v in vs[1:]:
            combos.append([v if j == i else (w[0] if w else None) for j, w in enumerate(values)])
    return [[o for o in c if o is not None] for c in combos]


def _check_added_keys(overrides: list[str]) -> None:
    """`+key=value` adds keys Hydra accepts but TrainConfig then silently drops."""
    for o in overrides:
        if o.startswith("+") and "=" in o:
            key = o.lstrip("+").split("=")[0]
            path = key.split(".")
            if path[0] in ("intervention", "hydra") or _default_node(path) is not None:
                continue
            raise BadInput(f"unknown config key '{key}' (in '{o}'); check the spelling"
                           f"{_keys_hint(path[:-1] if _default_node(path[:-1]) is not None else [])}")


def check_config(cfg: TrainConfig, command: str) -> None:
    """What composition cannot check: names, paths, intervention parameters and stacking."""
    from entropyctl.runstore.store import RunStoreError, check_name

    try:
        check_name(cfg.sweep, "sweep name")
        check_name(cfg.model.name, "model.name")
    except RunStoreError as e:
        raise BadInput(str(e)) from None
    if cfg.model.kind not in ("lab", "hf"):
        raise BadInput(f"unknown model.kind {cfg.model.kind!r}; choose lab (the embedded model) or hf "
                       "(a local checkpoint at model.path)")
    if cfg.model.kind == "hf" and not cfg.model.path:
        raise BadInput("model=hf needs the checkpoint: add model.path=/path/to/checkpoint (a local "
                       "directory saved with save_pretrained)")
    if cfg.model.path and not (Path(cfg.model.path) / "config.json").is_file():
        raise BadInput(f"model.path {cfg.model.path!r} is not a local Hugging Face checkpoint (no "
                       "config.json); give a directory saved with save_pretrained, or leave model.path "
                       "unset for the lab model")
    for key, low in (("rounds", 1), ("checkpoint_every", 0), ("checkpoint_keep", 1)):
        if getattr(cfg, key) < low:
            raise BadInput(f"{key}={getattr(cfg, key)} is out of range; give {key}>={low}")
    from entropyctl.tasks import check as check_task

    check_task(cfg.task)  # the prompt file, its rows, the verifier's extra: before any run dir
    if cfg.model.kind == "lab" and not cfg.model.path and cfg.task.kind != "addition":
        raise BadInput(f"task.kind={cfg.task.kind} needs a model with a real tokenizer (the lab model knows "
                       "only additions); add model=hf model.path=/path/to/checkpoint")
    if command == "train":
        _check_interventions(cfg.intervention)


def _check_interventions(selection: dict) -> None:
    from omegaconf.errors import OmegaConfBaseException

    from entropyctl.interventions import InterventionError, build

    try:
        pipeline = build(selection)
    except InterventionError as e:
        raise BadInput(str(e)) from None
    for name, cfg_obj in pipeline.configs.items():
        params = dict(selection.get(name) or {})
        try:
            OmegaConf.merge(OmegaConf.structured(type(cfg_obj)), params)
        except OmegaConfBaseException as e:
            key = str(getattr(e, "full_key", "") or "?")
            m = re.search(r"converted to (\w+)|is not a valid (\w+)", str(e))
            wanted = _TYPE_WORDS.get(next(g for g in m.groups() if g), m.group(0)) if m else "another type"
            default = getattr(type(cfg_obj)(), key, None)
            raise BadInput(f"wrong type in 'intervention.{name}.{key}={params.get(key)}': {key} takes "
                           f"{wanted}, not {params.get(key)!r} (default {default!r})") from None


def validate(command: str, args: list[str]) -> None:
    """Raise BadInput (one line) unless every job of `entropyctl <command> <args>` composes."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()

    def argparse_error(message: str) -> None:
        raise BadInput(f"{message}; see entropyctl {command} --help")

    parser.error = argparse_error  # type: ignore[method-assign]
    ns = parser.parse_args(args)
    if (ns.help or ns.hydra_help or ns.info or ns.shell_completion or ns.config_path or ns.config_name
            or ns.config_dir or ns.experimental_rerun):
        return  # Hydra's own help/introspection, or a config outside conf/: Hydra checks it
    overrides = list(ns.overrides)
    _check_added_keys(overrides)
    try:
        combos = _combinations(overrides, ns.multirun)
    except Exception as e:  # OverrideParseException
        raise BadInput(_explain(e, overrides)) from e
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        for combo in combos:
            try:
                cfg = compose(config_name="config", overrides=combo)
                typed = OmegaConf.to_object(cfg)
            except BadInput:  # a dataclass's own check (__post_init__): already one line
                raise
            except Exception as e:
                raise BadInput(_explain(e, combo)) from e
            if typed.debug:
                enable_debug()
            check_config(typed, command)


# ----------------------------------------------------------------------------- running


def guarded(fn: Callable[[], Any], multirun: bool = False) -> None:
    """Run `fn` (a train or resume) and report how it ended in one line and an exit code.
    In a sweep a diverged or failed run is reported and the sweep goes on."""
    from entropyctl.train.checkpoint import CheckpointError
    from entropyctl.interventions import InterventionError
    from entropyctl.runstore.store import RunStoreError
    from entropyctl.train.update import Divergence

    try:
        fn()
    except (BadInput, InterventionError, RunStoreError, CheckpointError, FileNotFoundError) as e:
        _user_error(str(e), e)
    except Divergence as e:
        where = getattr(e, "run_dir", None)
        _say(f"run diverged in round {getattr(e, 'round', '?')}: {_first_line(e)}; status, round and "
             f"reason are in {where}/run.json", e)
        if not multirun:
            sys.exit(EXIT_DIVERGED)
    except KeyboardInterrupt as e:
        where = getattr(e, "run_dir", None)
        _say(f"interrupted; continue it with: entropyctl resume {where}" if where
             else "interrupted before the run started; nothing was written", e)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as e:
        where = getattr(e, "run_dir", None)
        _say(f"run failed: {type(e).__name__}: {_first_line(e)}"
             + (f" (status failed in {where}/run.json; it can be resumed)" if where else "")
             + ("" if debug_enabled() else "; rerun with --debug for the traceback"), e)
        if not multirun:
            sys.exit(EXIT_FAILED)


def _typed(cfg: DictConfig) -> TrainConfig:
    return OmegaConf.to_object(cfg)


def _train_task(cfg: DictConfig) -> None:
    from hydra.types import RunMode

    from entropyctl.train.loop import run

    typed = _typed(cfg)
    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    guarded(lambda: run(typed, OmegaConf.to_yaml(cfg, resolve=True), overrides), multirun=hc.mode == RunMode.MULTIRUN)


def _pretrain_task(cfg: DictConfig) -> None:
    from entropyctl.train.loop import resolve_model_path

    guarded(lambda: resolve_model_path(_typed(cfg)))


TASKS = {"train": _train_task, "pretrain": _pretrain_task}


def run_hydra(command: str, args: list[str]) -> int:
    args = list(args)
    if "--debug" in args:
        args.remove("--debug")
        enable_debug()
    register_schemas()
    try:
        validate(command, args)
    except BadInput as e:
        _user_error(str(e), e)
    sys.argv = [f"entropyctl {command}", *args]
    app = hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")(TASKS[command])
    app()
    return 0


def resume_cli(run_dir: Path, progress: bool | None = None, threads: int | None = None) -> int:
    """`entropyctl resume RUN_DIR`: continue the run with its own saved config."""
    from entropyctl.train.resume import resume

    guarded(lambda: resume(Path(run_dir), progress=progress, threads=threads))
    return 0
