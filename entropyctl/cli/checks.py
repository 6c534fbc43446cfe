"""Every check on a `train` / `pretrain` command, made before anything is written.

`validate` parses the Hydra command line, composes every job of it with Hydra's compose API
(a sweep: every job, before the first starts), builds each job's typed TrainConfig (whose
`__post_init__` methods check ranges and enums, entropyctl/config.py) and checks what the
dataclasses cannot: names, paths, plugins and backends, intervention parameters and stacking,
the sweep launcher. Each problem becomes one BadInput line naming it and its fix (exit 2).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from entropyctl.config import TrainConfig
from entropyctl.errors import BadInput, enable_debug, first_line as _first_line

# The shipped configs: the top-level conf/, reached through the package's conf symlink so that an
# editable install and an installed wheel (which packs conf/ as package data) find them alike.
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
MAX_PRODUCT = 512  # sweeps up to this many jobs are checked job by job; larger: each value once


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


# Hydra's override grammar reads these in a value itself; a path holding one must be quoted.
_GRAMMAR_CHARS = set("~()[]{},='\"$ ")


def _unparsed(why: str, overrides: list[str]) -> str:
    """The override Hydra could not parse, and how to write it: a value with a character of
    its grammar in it is quoted; a ~ is expanded by entropyctl, not by the shell, after `key=`."""
    bad = next((o for o in overrides if not _parses(o)), None)
    m = re.fullmatch(r"([+~]*[\w.@/-]+)=(.*)", bad or "", re.S)
    if not m or not _GRAMMAR_CHARS & set(m.group(2)):
        return f"cannot parse the override: {why}; overrides look like key=value"
    key, value = m.groups()
    return (f"cannot parse the value of {key.lstrip('+~')} in {bad!r}: Hydra reads ~ ( ) [ ] {{ }} , = quotes $ "
            f"and spaces in a value itself; quote it, as '{key}=\"{value}\"'"
            + (" (entropyctl expands the ~)" if value.startswith("~") else ""))


def _parses(override: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        OverridesParser.create().parse_override(override)
    except HydraException:  # the lexer's errors come as its base class
        return False
    return True


def _explain(exc: BaseException, overrides: list[str]) -> str:
    """One line for a Hydra/OmegaConf composition error: the problem and the fix."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    chain, e = [], exc
    while e is not None and len(chain) < 10:
        chain.append(e)
        e = e.__cause__ or e.__context__
    for e in chain:  # a dataclass __post_init__ refused a value: its line is already the answer
        if isinstance(e, BadInput):
            return _first_line(e)
    for e in chain:
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
            return _unparsed(_first_line(e), overrides)
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
    """The jobs to check: every job of the sweep (the product of its values), or, beyond
    MAX_PRODUCT jobs, every override at its first value and then each other value in turn."""
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
    values = [v for v in values if v]
    n_jobs = 1
    for v in values:
        n_jobs *= len(v)
    if n_jobs <= MAX_PRODUCT:
        return [list(c) for c in itertools.product(*values)]
    base = [v[0] for v in values]
    combos = [base]
    for i, vs in enumerate(values):
        for v in vs[1:]:
            combos.append([v if j == i else w[0] for j, w in enumerate(values)])
    return combos


def _check_launcher(overrides: list[str]) -> None:
    """joblib's n_jobs: 0 means nothing to it (Hydra would print a 31-line traceback)."""
    for o in overrides:
        key, _, value = o.lstrip("+").partition("=")
        if key == "hydra.launcher.n_jobs":
            try:
                n = int(value)
            except ValueError:
                n = 0
            if n == 0:
                raise BadInput(f"hydra.launcher.n_jobs={value} is not a number of workers; give "
                               "hydra.launcher.n_jobs=N with N >= 1 (or -1 for one per core)")


def _check_added_keys(overrides: list[str]) -> None:
    """`+key=value` adds keys Hydra accepts but TrainConfig then silently drops."""
    for o in overrides:
        if o.startswith("+") and "=" in o:
            key = o.lstrip("+").split("=")[0]
            path = key.split(".")
            # A curriculum phase takes any task key; config_task.phase_config checks them.
            phase = path[:2] == ["task", "curriculum"] and path[2:3] in (["a"], ["b"])
            if path[0] in ("intervention", "hydra") or phase or _default_node(path) is not None:
                continue
            raise BadInput(f"unknown config key '{key}' (in '{o}'); check the spelling"
                           f"{_keys_hint(path[:-1] if _default_node(path[:-1]) is not None else [])}")


def check_config(cfg: TrainConfig, command: str) -> None:
    """What the config dataclasses cannot check: names, paths, plugins and backends,
    intervention parameters and stacking. Ranges and enums are checked in their __post_init__."""
    from entropyctl import plugins
    from entropyctl.runstore.store import RunStoreError, check_name

    try:
        check_name(cfg.sweep, "sweep name")
        check_name(cfg.model.name, "model.name")
    except RunStoreError as e:
        raise BadInput(str(e)) from None
    kinds = ["hf", *plugins.available(plugins.MODELS)]
    if cfg.model.kind not in kinds:
        raise BadInput(f"model.kind={cfg.model.kind} is not installed; choose one of {', '.join(kinds)} "
                       "(hf: a local checkpoint at model.path)")
    if cfg.model.kind == "hf" and not cfg.model.path:
        raise BadInput("model=hf needs the checkpoint: add model.path=/path/to/checkpoint (a local "
                       "directory saved with save_pretrained)")
    if cfg.model.path:
        from entropyctl.models.loading import check_is_checkpoint

        check_is_checkpoint(Path(cfg.model.path))
    tasks = plugins.available(plugins.TASKS)
    if cfg.task.kind not in tasks:
        raise BadInput(f"task.kind={cfg.task.kind} is not an installed task; choose one of "
                       f"{', '.join(tasks) or '(none: reinstall entropyctl)'}")
    from entropyctl.tasks import check as check_task

    check_task(cfg.task)  # the prompt file, its rows, the verifier's extra: before any run dir
    kind = cfg.task.curriculum.kind if cfg.task.kind == "curriculum" else cfg.task.kind  # what it trains on
    if cfg.model.kind == "lab" and not cfg.model.path and kind != "addition":
        raise BadInput(f"task.kind={kind} needs a model with a real tokenizer (the lab model knows "
                       "only additions); add model=hf model.path=/path/to/checkpoint")
    if command == "train":  # the rollout backend and its install are RolloutConfig's own checks
        _check_interventions(cfg.intervention)


def _check_unused(cfg: TrainConfig, overrides: list[str]) -> None:
    """A setting typed on the command line that this job's run would never read."""
    from entropyctl.config_unused import override_key, unused_settings

    unused = unused_settings(cfg)
    for o in overrides:
        why = unused.get(override_key(o) or "")
        if why:
            raise BadInput(f"'{o.lstrip('+')}' would be ignored: {why}")


def _check_interventions(selection: dict) -> None:
    """Types first (a string where a number belongs), then ranges (each dataclass's
    __post_init__) and stacking (interventions.build)."""
    from omegaconf.errors import OmegaConfBaseException

    from entropyctl.interventions import build, load_all

    registry = load_all()
    for name, params in selection.items():
        spec = registry.get(name)
        if spec is None or not params:
            continue
        params = dict(params)
        if set(params) - {f.name for f in fields(spec.config_cls)}:
            continue  # build names the unknown parameter
        try:
            OmegaConf.merge(OmegaConf.structured(spec.config_cls), params)
        except OmegaConfBaseException as e:
            key = str(getattr(e, "full_key", "") or "?")
            m = re.search(r"converted to (\w+)|is not a valid (\w+)", str(e))
            wanted = _TYPE_WORDS.get(next(g for g in m.groups() if g), m.group(0)) if m else "another type"
            default = next((f.default for f in fields(spec.config_cls) if f.name == key), None)
            raise BadInput(f"wrong type in 'intervention.{name}.{key}={params.get(key)}': {key} takes "
                           f"{wanted}, not {params.get(key)!r} (default {default!r})") from None
    build(selection)  # InterventionError is a BadInput


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
    _check_launcher(overrides)
    try:
        combos = _combinations(overrides, ns.multirun)
    except Exception as e:  # OverrideParseException
        raise BadInput(_explain(e, overrides)) from e
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        for combo in combos:
            try:
                cfg = compose(config_name="config", overrides=combo)
                typed = OmegaConf.to_object(cfg)
                if typed.debug:
                    enable_debug()
                check_config(typed, command)
                if command == "train":
                    _check_unused(typed, combo)
            except Exception as e:
                where = f" (sweep job: {' '.join(combo)})" if len(combos) > 1 else ""
                raise BadInput(_explain(e, combo) + where) from e


