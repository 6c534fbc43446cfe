"""Finding a plugin by name: tasks and model builders register under entry-point groups in
their package's metadata (ours in pyproject.toml), so the core names an interface and never
imports an implementation. The lab is the first plugin; a user's package adds a task the same way:

    [project.entry-points."entropyctl.tasks"]
    mytask = "mypkg.task:MyTask"
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

TASKS = "entropyctl.tasks"  # name -> class(TaskConfig) implementing tasks.base.Task
MODELS = "entropyctl.models"  # model.kind -> ensure_base(model_cfg, task_cfg, cache_dir, progress: bool)


def available(group: str) -> list[str]:
    return sorted({ep.name for ep in entry_points(group=group)})


def load(group: str, name: str) -> Any:
    """The object registered as `name` in `group`; KeyError naming the valid ones."""
    found = [ep for ep in entry_points(group=group) if ep.name == name]
    if not found:
        raise KeyError(f"no {group.split('.')[-1][:-1]} named {name!r}; installed: "
                       f"{', '.join(available(group)) or '(none: reinstall entropyctl)'}")
    return found[0].load()
