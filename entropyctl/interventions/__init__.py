"""The intervention registry: each intervention is one small pure function over tensors plus
its own config dataclass, registered under its module name at one *stage* of the round.

Stages compose, so the update step and the round loop never branch on names:

    settings   (cfg) -> RunSettings                           run-level choices (dr_grpo)
    advantage  (TokenBatch, cfg) -> (TokenBatch, stats)       token-level advantage shaping (hicra)
    mask       (TokenBatch, cfg[, chosen]) -> (TokenBatch, stats)
                                                              narrow the tokens the aggregation counts
    surrogate  (TokenBatch, cfg[, chosen]) -> (loss (B, T), stats)
                                                              exactly one; `grpo` by default
    penalty    (TokenBatch, cfg) -> (loss (B, T), stats)      added per token before aggregation
                                                              (or a scalar: added after it)
    round      (RoundContext, cfg) -> stats                   extra work after a round's update

`intervention=[clip_higher,entropy_bonus]` stacks a surrogate and a penalty; two surrogates
at once are a config error. Per-token losses are aggregated once, by `losses.agg_loss`,
so every intervention follows the run's aggregation mode. Mask-stage selections only decide
what the aggregation counts: surrogates and penalties still see every valid token (their
covariance, top-k and clip statistics are over the loss call, as in the reference forks).

Optional hooks per intervention, given to `register`:
  * `select(b, cfg) -> (B, T) bool`: the tokens a selecting intervention picks. With the
    config's `scope` = `micro_batch` (default: per loss call, the reference behaviour) the
    stage function selects by itself; with `minibatch` or `round` the update step calls
    `Pipeline.select` on the wider scope and hands each loss call its rows as `chosen`.
  * `extra(b, cfg) -> (scalar, stats)`: a term with its own aggregation, added after the
    per-token loss is aggregated (GPPO's NLL on correct responses).
  * `settings(cfg) -> RunSettings`: run-level choices a non-`settings` intervention makes
    (GSPO and SAPO aggregate per sequence, as their references force).
  * `controller(cfg) -> Controller`: state that lives across loss calls (the entropy
    controllers). The stage function then takes it as a third argument, reads its
    coefficient and reports what it measured; `Pipeline.step()` (after every optimiser step)
    lets it fold those measurements in. Its `state_dict()` (JSON numbers) goes into the run's
    checkpoint and `load_state_dict()` puts it back, so a resumed run continues it exactly.
A penalty may also return a scalar instead of (B, T): a term it aggregated itself over its own
tokens (EntroPIC's high-probability tokens), added after the aggregation.
"""

from __future__ import annotations

from entropyctl.errors import BadInput

import dataclasses
import importlib
import pkgutil
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from torch import Tensor

from entropyctl.maths.batch import TokenBatch
from entropyctl.maths.losses import agg_loss

STAGES = ("settings", "advantage", "mask", "surrogate", "penalty", "round")
DEFAULT_SURROGATE = "grpo"
# Where a selecting intervention (clip_cov, kl_cov, forking_tokens) picks its tokens: within
# each loss call (the reference forks' per-micro-batch behaviour), over the optimiser step's
# minibatch, or once per round over all rollouts (on the rollout policy, before the update).
SCOPES = ("micro_batch", "minibatch", "round")


class InterventionError(BadInput):
    """A bad intervention selection or parameter, phrased for the user in one line."""


def check_param(name: str, cfg: Any, key: str, ok: bool, rule: str) -> None:
    """Refuse `intervention.<name>.<key>=<value>` unless `ok`, in one line with the rule and the
    shipped value: the dataclass default, which the YAML repeats (tests/test_edges.py)."""
    if not ok:
        default = next(f.default for f in dataclasses.fields(cfg) if f.name == key)
        raise InterventionError(f"intervention.{name}.{key}={getattr(cfg, key)} must be {rule}; give e.g. "
                                f"intervention.{name}.{key}={default}")


def check_ppo_clip(name: str, cfg: Any, eps_low_closed: bool = False) -> None:
    """The PPO clip bounds every clipped surrogate shares (spec §5.2): 0 <= eps_low < 1 (the lower
    bound 1 - eps_low stays positive; <= 1 where `eps_low_closed`), eps_high >= 0, dual clip c > 1."""
    low_ok = 0 <= cfg.eps_low <= 1 if eps_low_closed else 0 <= cfg.eps_low < 1
    check_param(name, cfg, "eps_low", low_ok, "in [0, 1]" if eps_low_closed else "in [0, 1)")
    check_param(name, cfg, "eps_high", 0 <= cfg.eps_high < float("inf"), "a number >= 0")
    if hasattr(cfg, "clip_c"):
        check_param(name, cfg, "clip_c", 1 < cfg.clip_c < float("inf"), "a number > 1 (the dual clip)")


def check_scope(name: str, scope: str) -> None:
    if scope not in SCOPES:
        raise InterventionError(f"intervention.{name}.scope={scope} is not one of {', '.join(SCOPES)}; "
                                "choose one of them")


@dataclass(frozen=True)
class Spec:
    name: str
    stage: str
    config_cls: type
    fn: Callable
    select: Optional[Callable] = None  # (TokenBatch, cfg) -> (B, T) bool over a wider scope
    extra: Optional[Callable] = None  # (TokenBatch, cfg) -> (scalar, stats), added after agg
    needs_ref: bool = False  # reads ref_logp: the run must load the frozen base model
    settings: Optional[Callable] = None  # cfg -> RunSettings, for a non-settings stage
    controller: Optional[Callable] = None  # cfg -> Controller, state across loss calls


REGISTRY: dict[str, Spec] = {}


def register(name: str, config_cls: type, stage: str, select: Callable | None = None,
             extra: Callable | None = None, needs_ref: bool = False, settings: Callable | None = None,
             controller: Callable | None = None):
    """Decorator: make `fn` the intervention `name` (= module name = YAML name)."""
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r} is not one of {STAGES}")

    def deco(fn: Callable) -> Callable:
        REGISTRY[name] = Spec(name, stage, config_cls, fn, select, extra, needs_ref, settings, controller)
        return fn

    return deco


@dataclass(frozen=True)
class RunSettings:
    """Run-level choices a `settings` intervention makes in place of the run's config
    (None = keep the config's value). The run logs each one it applies."""

    advantage_estimator: Optional[str] = None  # instead of advantage.estimator
    agg_mode: Optional[str] = None  # instead of optim.agg_mode
    loss_scale: Optional[float] = None  # instead of optim.loss_scale


@dataclass
class RoundContext:
    """What a `round` intervention may use after the round's update."""

    round: int
    model: Any  # the policy, in eval mode; a hook that trains it puts it back in eval mode
    optimizer: Any  # the run's optimiser
    tokenizer: Any
    task: Any  # the task (demonstrations, formats)
    rng: random.Random  # seeded from (seed, round): never shifts the run's other streams
    grad_clip: float  # optim.grad_clip
    scaler: Any = None  # float16's loss scaler: models.precision.backward / clip_and_step take it


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
    surrogate: Callable
    advantage: list[Callable] = field(default_factory=list)
    mask: list[Callable] = field(default_factory=list)
    penalty: list[Callable] = field(default_factory=list)
    round: list[Callable] = field(default_factory=list)
    extra: list[Callable] = field(default_factory=list)
    selectors: dict[str, tuple[str, Callable]] = field(default_factory=dict)  # name -> (scope, fn)
    settings: RunSettings = field(default_factory=RunSettings)
    configs: dict[str, Any] = field(default_factory=dict)
    controllers: dict[str, Any] = field(default_factory=dict)  # name -> its state across loss calls

    # what the user selected: the implicit default surrogate is not part of a run's name
    selected: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return "+".join(self.selected or self.names)

    @property
    def needs_ref(self) -> bool:
        """Whether a selected intervention reads the base model's log-probs (ref_logp)."""
        return any(REGISTRY[n].needs_ref for n in self.names if n in REGISTRY)

    @property
    def scopes(self) -> set[str]:
        """Selection scopes wider than one loss call that the update must prepare."""
        return {scope for scope, _ in self.selectors.values() if scope != "micro_batch"}

    def advantage_estimator(self, default: str) -> str:
        return self.settings.advantage_estimator or default

    def aggregation(self, agg_mode: str, scale: float | None) -> tuple[str, float | None]:
        """(mode, scale) of `losses.agg_loss`: the run's optim values unless an intervention sets them."""
        s = self.settings
        return s.agg_mode or agg_mode, scale if s.loss_scale is None else s.loss_scale

    def shape(self, b: TokenBatch) -> tuple[TokenBatch, dict[str, Tensor]]:
        stats: dict[str, Tensor] = {}
        for shape in self.advantage:
            b, s = shape(b)
            stats.update(s)
        return b, stats

    def select(self, b: TokenBatch, scope: str) -> dict[str, Tensor]:
        """{name: (B, T) bool} for the selecting interventions whose scope is `scope`, over
        the tokens of `b` (advantage shaping applied first, as in a loss call)."""
        b, _ = self.shape(b)
        return {n: fn(b) for n, (sc, fn) in self.selectors.items() if sc == scope}

    def loss(self, b: TokenBatch, agg_mode: str, scale: float | None,
             chosen: Mapping[str, Tensor] | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Scalar loss for one loss call, and the interventions' statistics. `chosen` holds
        this call's rows of selections made over a wider scope (see `select`)."""
        chosen = chosen or {}
        b, stats = self.shape(b)
        counted = b  # what the aggregation counts; mask stages narrow it
        for select in self.mask:
            counted, s = select(counted, chosen.get(select.__name__))
            stats.update(s)
        per_token, s = self.surrogate(b, chosen.get(self.surrogate.__name__))
        stats.update(s)
        if b.is_weight is not None:  # rollout correction (spec §14): the surrogate only
            per_token = per_token * b.is_weight
        after = []  # penalties that aggregated themselves (a scalar)
        for penalty in self.penalty:
            p, s = penalty(b)
            if p.dim() == 0:
                after.append(p)
            else:
                per_token = per_token + p
            stats.update(s)
        loss = agg_loss(per_token, counted.mask, agg_mode, scale, counted.loss_mask)
        for term in after:
            loss = loss + term
        for extra in self.extra:
            x, s = extra(b)
            loss = loss + x
            stats.update(s)
        return loss, stats

    def after_round(self, ctx: RoundContext) -> dict[str, float]:
        stats: dict[str, float] = {}
        for hook in self.round:
            stats.update(hook(ctx))
        return stats

    def step(self) -> None:
        """After each optimiser step: every controller folds in what the step measured."""
        for ctrl in self.controllers.values():
            ctrl.step()

    def state_dict(self) -> dict[str, dict]:
        """{name: the controller's state} (JSON-safe numbers), for the run's checkpoint."""
        return {n: ctrl.state_dict() for n, ctrl in self.controllers.items()}

    def load_state_dict(self, state: Mapping[str, Mapping]) -> None:
        missing = sorted(set(self.controllers) - set(state))
        if missing:
            raise InterventionError(f"the checkpoint holds no state for {', '.join(missing)}; "
                                    "resume it with the config it was started with")
        for n, ctrl in self.controllers.items():
            ctrl.load_state_dict(state[n])


def _bind(name: str, fn: Callable, cfg: Any, pass_chosen: bool = False, ctrl: Any = None) -> Callable:
    """fn with its config (and controller, if it has one) bound; `chosen` (a wider scope's
    selection) only reaches fn when it takes one."""

    def bound(x, chosen=None):
        if pass_chosen:
            return fn(x, cfg, chosen)
        return fn(x, cfg) if ctrl is None else fn(x, cfg, ctrl)

    bound.__name__ = name
    return bound


def _merge_settings(parts: list[tuple[str, RunSettings]]) -> RunSettings:
    merged: dict[str, tuple[str, Any]] = {}
    for name, rs in parts:
        for f in dataclasses.fields(RunSettings):
            v = getattr(rs, f.name)
            if v is None:
                continue
            if f.name in merged and merged[f.name][1] != v:
                other, ov = merged[f.name]
                raise InterventionError(
                    f"interventions {other} and {name} set {f.name} to {ov!r} and {v!r}: pick one"
                )
            merged[f.name] = (name, v)
    return RunSettings(**{k: v for k, (_, v) in merged.items()})


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
    extra, selectors, settings, controllers = [], {}, [], {}
    for n in names:
        spec, cfg = registry[n], chosen[n]
        scope = getattr(cfg, "scope", "micro_batch")
        if scope not in SCOPES:
            raise InterventionError(
                f"{n}.scope is {scope!r}; choose one of {', '.join(SCOPES)}"
            )
        if spec.stage == "settings":
            settings.append((n, spec.fn(cfg)))
            continue
        if spec.settings is not None:
            settings.append((n, spec.settings(cfg)))
        if spec.controller is not None:
            controllers[n] = spec.controller(cfg)
        by_stage[spec.stage].append(_bind(n, spec.fn, cfg, pass_chosen=spec.select is not None,
                                          ctrl=controllers.get(n)))
        if spec.select is not None:
            selectors[n] = (scope, _bind(n, spec.select, cfg))
        if spec.extra is not None:
            extra.append(_bind(n, spec.extra, cfg))
    return Pipeline(
        names=names,
        selected=list(selection) or [DEFAULT_SURROGATE],
        surrogate=by_stage["surrogate"][0],
        advantage=by_stage["advantage"],
        mask=by_stage["mask"],
        penalty=by_stage["penalty"],
        round=by_stage["round"],
        extra=extra,
        selectors=selectors,
        settings=_merge_settings(settings),
        configs=chosen,
        controllers=controllers,
    )
