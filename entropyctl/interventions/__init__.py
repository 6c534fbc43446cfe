"""The intervention registry: each intervention is one small pure function over tensors plus
its own config dataclass, registered under its module name at one *stage* of the loss.

Stages compose, so the update step never branches on names:

    advantage  (TokenBatch, cfg) -> TokenBatch               token-level advantage shaping
    mask       (TokenBatch, cfg) -> (TokenBatch, stats)       narrow the tokens that train
    surrogate  (TokenBatch, cfg) -> (loss (B, T), stats)      exactly one; `grpo` by default
    penalty    (TokenBatch, cfg) -> (loss (B, T), stats)      added per token before aggregation
    round      (RoundContext, cfg) -> stats                   extra work after a round's update

`intervention=[clip_higher,entropy_bonus]` stacks a surrogate and a penalty; two surrogates
at once are a config error. Per-token losses are aggregated once, by `losses.agg_loss`,
so every intervention follows the run's aggregation mode.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from torch import Tensor

from entropyctl.batch import TokenBatch
from entropyctl.losses import agg_loss

STAGES = ("advantage", "mask", "surrogate", "penalty", "round")
DEFAULT_SURROGATE = "grpo"


class InterventionError(ValueError):
    """A bad intervention selection or parameter, phrased for the user in one line."""


@dataclass(frozen=True)
class Spec:
    name: str
    stage: str
    config_cls: type
    fn: Callable


REGISTRY: dict[str, Spec] = {}


def register(name: str, config_cls: type, stage: str):
    """Decorator: make `fn` the intervention `name` (= module name = YAML name)."""
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r} is not one of {STAGES}")

    def deco(fn: Callable) -> Callable:
        REGISTRY[name] = Spec(name, stage, config_cls, fn)
        return fn

    return deco


def load_all() -> dict[str, Spec]:
    """Import every module of this package so each registers itself."""
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
    return REGISTRY


def make_config(spec: Spec, params: Mapping[str, Any] | None) -> Any:
    params = dict(params or {})
    names = {f.name for f in dataclasses.fields(spec.config_cls)}
    unknown = sorted(set(params) - names)
    if unknown:
        raise InterventionError(
            f"intervention {spec.name!r} has no parameter {', '.join(unknown)}; "
            f"its parameters are {', '.join(sorted(names)) or '(none)'}"
        )
    return spec.config_cls(**params)


@dataclass
class Pipeline:
    """The selected interventions, bound to their configs, in stage order."""

    names: list[str]
    surrogate: Callable[[TokenBatch], tuple[Tensor, dict]]
    advantage: list[Callable] = field(default_factory=list)
    mask: list[Callable] = field(default_factory=list)
    penalty: list[Callable] = field(default_factory=list)
    round: list[Callable] = field(default_factory=list)
    configs: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "+".join(self.names)

    def loss(self, b: TokenBatch, agg_mode: str, scale: float | None) -> tuple[Tensor, dict[str, Tensor]]:
        """Scalar loss for one loss call, and the interventions' statistics."""
        stats: dict[str, Tensor] = {}
        for shape in self.advantage:
            b = shape(b)
        for select in self.mask:
            b, s = select(b)
            stats.update(s)
        per_token, s = self.surrogate(b)
        stats.update(s)
        for penalty in self.penalty:
            p, s = penalty(b)
            per_token = per_token + p
            stats.update(s)
        return agg_loss(per_token, b.mask, agg_mode, scale, b.loss_mask), stats


def _bind(spec: Spec, cfg: Any) -> Callable:
    def bound(x):
        return spec.fn(x, cfg)

    bound.__name__ = spec.name
    return bound


def build(selection: Mapping[str, Mapping[str, Any] | None]) -> Pipeline:
    """`{name: params}` (the `intervention` config node) -> Pipeline. Raises InterventionError."""
    registry = load_all()
    unknown = [n for n in selection if n not in registry]
    if unknown:
        raise InterventionError(
            f"unknown intervention {unknown[0]!r}; valid ones: {', '.join(sorted(registry))}"
        )
    chosen = {n: make_config(registry[n], p) for n, p in selection.items()}
    surrogates = [n for n in chosen if registry[n].stage == "surrogate"]
    if len(surrogates) > 1:
        raise InterventionError(
            f"two surrogate interventions at once ({' and '.join(surrogates)}): pick one of them "
            "and stack it with mask/penalty/advantage ones"
        )
    if not surrogates:
        default = registry[DEFAULT_SURROGATE]
        chosen = {DEFAULT_SURROGATE: make_config(default, None), **chosen}
    names = list(chosen)
    by_stage: dict[str, list[Callable]] = {s: [] for s in STAGES}
    for n in names:
        by_stage[registry[n].stage].append(_bind(registry[n], chosen[n]))
    return Pipeline(
        names=names,
        surrogate=by_stage["surrogate"][0],
        advantage=by_stage["advantage"],
        mask=by_stage["mask"],
        penalty=by_stage["penalty"],
        round=by_stage["round"],
        configs=chosen,
    )
