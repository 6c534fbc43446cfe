"""What the entropy controllers share: state that lives across loss calls and moves once per
optimiser step (not an intervention: it registers nothing).

A loss call `observe`s a number (its entropy, or its controller error); `step()`, which the
update calls after every optimiser step through `Pipeline.step()`, hands the mean over the
step's loss calls to `update` and starts a new window. Loss calls weigh equally, as the update
weighs them (1 / micro_batches each). `FIELDS` names the state a checkpoint keeps: plain floats
(or None), which JSON carries exactly, so a resumed run continues the controller bit for bit.
Checkpoints are written between rounds, when the window is empty, so it is never saved.
"""

from __future__ import annotations

from typing import Any, Mapping


class StepController:
    FIELDS: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._window: list[float] = []

    def observe(self, value: float) -> None:
        self._window.append(float(value))

    def step(self) -> None:
        if self._window:
            self.update(sum(self._window) / len(self._window))
            self._window = []

    def update(self, measured: float) -> None:  # pragma: no cover - each controller defines it
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.FIELDS}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for f in self.FIELDS:
            setattr(self, f, None if state[f] is None else float(state[f]))
        self._window = []
