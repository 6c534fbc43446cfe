"""Tasks: the `Task` interface the round loop, the metrics and the interventions depend on
(`base`), and `build`, which finds an implementation by name through the plugin registry.
The lab's addition task is one implementation (a plugin in the lab package); prompt files with
verifiers live here beside the interface."""

from __future__ import annotations

from entropyctl.tasks.base import UNKNOWN, Task

__all__ = ["UNKNOWN", "Task", "build"]


def build(cfg) -> Task:
    """The task `cfg.name` (a `TaskConfig`), built from its config."""
    from entropyctl import plugins

    return plugins.load(plugins.TASKS, cfg.name)(cfg)
