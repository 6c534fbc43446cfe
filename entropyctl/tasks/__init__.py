"""Tasks: the `Task` interface the round loop, the metrics and the interventions depend on
(`base`), and `build`, which finds an implementation by `task.kind` through the plugin
registry. The lab's addition task is one implementation (a plugin in the lab package); a
prompt file with a verifier (`jsonl`, `verifiers`) lives here beside the interface."""

from __future__ import annotations

from entropyctl.tasks.base import UNKNOWN, Task

__all__ = ["UNKNOWN", "Task", "build", "check"]


def _plugin(cfg):
    from entropyctl import plugins
    from entropyctl.errors import BadInput

    try:
        return plugins.load(plugins.TASKS, cfg.kind)
    except KeyError as e:
        raise BadInput(f"task.kind={cfg.kind}: {e.args[0]}") from None


def build(cfg) -> Task:
    """The task of kind `cfg.kind` (a `TaskConfig`), built from its config."""
    return _plugin(cfg)(cfg)


def check(cfg) -> None:
    """BadInput (one line) when the task cannot be built from `cfg`: its files, rows and
    extras, checked before any run directory exists. Tasks without a `check` are built."""
    cls = _plugin(cfg)
    getattr(cls, "check", cls)(cfg)
