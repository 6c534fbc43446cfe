"""`entropyctl config show [OVERRIDES...]`: the config `entropyctl train` would compose, each value
with the place that set it.

How the sources are worked out (Hydra's compose API does not report them): the config is composed
exactly as `train` composes it (same conf dir, `--config-dir` added to the search path the way
Hydra's own `--config-dir` adds it, the same checks: a bad override is one line, exit 2). Then
Hydra's config loader gives the resolved defaults list for the same overrides (what `--info
defaults` prints), and each selected file of it is read, in merge order, through Hydra's own
config repository, placed at its package (`@package _global_` at the root, a group file under its
group), and every leaf it contains is recorded as set by that file; Hydra merges in the same order,
so the last file to set a key is the one whose value stands. Command-line value overrides
(`rounds=7`, `+key=...`, `model={...}`: every leaf under the key) come last and are recorded as
"override". A leaf nobody set holds its dataclass default: "default (entropyctl/config.py:Class)".
Lists are single values (a file that sets a list sets all of it), as Hydra merges them.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import is_dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from entropyctl.errors import BadInput

OVERRIDE = "override"


def _search_path(config_dir: Path | None):
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery

    from entropyctl.cli.checks import CONF_DIR

    csp = create_config_search_path(str(CONF_DIR))
    if config_dir is not None:
        extra = os.path.abspath(config_dir)
        if not os.path.isdir(extra):
            raise BadInput(f"--config-dir {config_dir}: no such directory; give a folder of config groups "
                           "(e.g. my-conf/intervention/my_variant.yaml)")
        # where Hydra's own --config-dir puts it (hydra/_internal/utils.py: before the schema)
        csp.prepend(provider="command-line", path=f"file://{extra}", anchor=SearchPathQuery(provider="schema"))
    return csp


@contextmanager
def hydra_at(config_dir: Path | None = None):
    """Hydra initialised on the shipped conf/ (plus `config_dir`), as `entropyctl train` sees it."""
    from hydra._internal.hydra import Hydra
    from hydra.core.global_hydra import GlobalHydra

    from entropyctl.config import register_schemas

    register_schemas()
    csp = _search_path(config_dir)
    GlobalHydra.instance().clear()
    Hydra.create_main_hydra2(task_name="entropyctl", config_search_path=csp)
    try:
        yield GlobalHydra.instance().config_loader()
    finally:
        GlobalHydra.instance().clear()


def _label(source_path: str, config_path: str) -> str:
    """A file's name as the user knows it: conf/<group>/<option>.yaml for ours, the full path for theirs."""
    from entropyctl.cli.checks import CONF_DIR

    root = source_path.split("://", 1)[-1]
    if Path(root).resolve() == CONF_DIR.resolve():
        return f"conf/{config_path}.yaml"
    return str(Path(root) / f"{config_path}.yaml")


def _leaves(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of every value that is not a non-empty mapping (lists are values)."""
    if isinstance(node, dict) and node:
        return [p for k, v in node.items() for p in _leaves(v, (*prefix, str(k)))]
    return [prefix] if prefix else []


def _nest(package: str, node: Any) -> Any:
    for part in reversed([p for p in package.split(".") if p]):
        node = {part: node}
    return node


def _default_label(path: tuple[str, ...]) -> str:
    """Which dataclass holds the default of `path` (the ONLY place defaults live)."""
    from entropyctl.config import TrainConfig

    node: Any = TrainConfig()
    owner = type(node)
    for part in path[:-1]:
        node = getattr(node, part, None) if is_dataclass(node) else None
        if not is_dataclass(node):
            break
        owner = type(node)
    else:
        return f"default (entropyctl/config.py:{owner.__name__})"
    if path[0] == "intervention" and len(path) >= 3:  # parameters of an intervention nobody's file lists
        from entropyctl.interventions import load_all

        spec = load_all().get(path[1])
        if spec is not None:
            cls = spec.config_cls
            return f"default ({cls.__module__.replace('.', '/')}.py:{cls.__name__})"
    return "default"


def compose_with_sources(overrides: list[str], config_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """{dotted key: {"value": v, "source": where it was set}} for `entropyctl train OVERRIDES`.
    Raises BadInput (one line) when the overrides do not compose or fail a check."""
    from hydra import compose
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from entropyctl.cli import checks

    checks._check_added_keys(overrides)
    with hydra_at(config_dir) as loader:
        try:
            cfg = compose(config_name="config", overrides=list(overrides))
            checks.check_config(OmegaConf.to_object(cfg), "train")
            defaults = loader.compute_defaults_list("config", list(overrides), RunMode.RUN).defaults
            parsed = OverridesParser.create().parse_overrides(list(overrides))
        except BadInput:
            raise
        except Exception as e:  # Hydra's and OmegaConf's errors: checks words them as `train` does
            raise BadInput(checks._explain(e, list(overrides))) from e
        repo = loader.repository
        events: list[tuple[tuple[str, ...], str]] = []  # (path, who set it), in merge order
        for d in defaults:
            path = d.config_path or ""
            if path.startswith("hydra/") or path in ("hydra", "config_schema"):
                continue  # Hydra's own settings; config_schema is the dataclass defaults themselves
            loaded = repo.load_config(config_path=path)
            if loaded is None or loaded.is_schema_source or loaded.path.startswith("structured:"):
                continue
            node = OmegaConf.to_container(loaded.config, resolve=False)
            if not isinstance(node, dict):
                continue
            node = {k: v for k, v in node.items() if k not in ("defaults", "hydra")}
            label = _label(loaded.path, path)
            events += [(p, label) for p in _leaves(_nest(d.package or "", node))]
        for o in parsed:
            key = o.key_or_group
            if o.is_delete() or key.split(".")[0] == "hydra" or repo.group_exists(key):
                continue  # deletions, Hydra's settings and group choices (their files are above)
            value = o.value()
            if isinstance(value, dict) and value:
                events += [(p, OVERRIDE) for p in _leaves(_nest(key, value))]
            else:
                events.append((tuple(key.split(".")), OVERRIDE))
        final = OmegaConf.to_container(cfg, resolve=True)
    out: dict[str, dict[str, Any]] = {}
    for leaf in _leaves(final):
        source = None
        for path, label in events:  # the last to set the leaf, or a mapping/list above it, wins
            if leaf[: len(path)] == path:
                source = label
        value: Any = final
        for part in leaf:
            value = value[part]
        out[".".join(leaf)] = {"value": value, "source": source or _default_label(leaf)}
    return out


# ----------------------------------------------------------------------------- printing


def _scalar(value: Any) -> str:
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False).strip()
    return text[:-3].rstrip() if text.endswith("...") else text  # a bare scalar's document end


def to_yaml(entries: dict[str, dict[str, Any]]) -> str:
    """The composed config as YAML (it loads back to the same values), each value followed by a
    `# source` comment, comments aligned."""
    import yaml

    lines: list[tuple[str, str | None]] = []  # (yaml text, source comment)
    seen: set[tuple[str, ...]] = set()
    for key, e in entries.items():
        parts = key.split(".")
        for depth in range(len(parts) - 1):  # open each parent mapping once
            if tuple(parts[: depth + 1]) not in seen:
                seen.add(tuple(parts[: depth + 1]))
                lines.append((f"{'  ' * depth}{_scalar(parts[depth])}:", None))
        indent = "  " * (len(parts) - 1)
        name, value = _scalar(parts[-1]), e["value"]
        if isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
            lines.append((f"{indent}{name}:", e["source"]))
            block = yaml.safe_dump(value, default_flow_style=False, sort_keys=False, width=10**9)
            lines += [(f"{indent}{line}", None) for line in block.rstrip("\n").splitlines()]
        else:
            lines.append((f"{indent}{name}: {_scalar(value)}", e["source"]))
    width = min(60, max((len(t) for t, s in lines if s), default=0))
    return "".join(f"{t.ljust(width)}  # {s}\n" if s else f"{t}\n" for t, s in lines)


def config_show(
    overrides: Annotated[Optional[list[str]], typer.Argument(
        help="Hydra overrides, as for `entropyctl train` (e.g. intervention=clip_cov rounds=7).",
        show_default=False)] = None,
    config_dir: Annotated[Optional[Path], typer.Option(
        "--config-dir", "-cd", help="Your own config groups, added to the shipped ones (as for train).",
        show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="{key: {value, source}} as one JSON object.")] = False,
) -> None:
    """The composed config of `entropyctl train OVERRIDES`, each value with the file that set it.

    Example: entropyctl config show intervention=clip_cov experiment=demo rounds=7
    Sources: conf/<group>/<option>.yaml, "override" (the command line), or "default
    (entropyctl/config.py:Class)" for a dataclass default no file sets. Exit 2 on a bad override.
    """
    words = list(overrides or [])
    if "-m" in words or "--multirun" in words:
        raise BadInput("config show composes one job; drop -m and give one value per key")
    entries = compose_with_sources(words, config_dir)
    if as_json:
        typer.echo(json.dumps(entries, indent=2, default=str))
    else:
        typer.echo(to_yaml(entries), nl=False)
