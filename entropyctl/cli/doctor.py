"""`entropyctl doctor`: what this machine can run, in a few seconds, without loading a model.

Versions (python, torch, transformers, and vllm / wandb / math-verify when installed), devices
(CPU cores, CUDA devices with their memory), which rollout backends and extras work, and the
wandb mode the environment sets. `--json` prints the same facts as one JSON object.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
from typing import Annotated, Any

import typer

from entropyctl import __version__

# extra name -> (module, distribution, install hint)
EXTRAS = {
    "vllm": ("vllm", "vllm", "pip install 'entropyctl[vllm]'"),
    "math": ("math_verify", "math-verify", "pip install 'entropyctl[math]'"),
    "wandb": ("wandb", "wandb", "pip install 'entropyctl[wandb]'"),
}
BACKEND_EXTRAS = {"vllm": "vllm"}  # rollout backend -> the extra it needs (torch needs none)


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _extra(module: str, dist: str) -> dict[str, Any]:
    """Installed (a distribution is present), version, and whether it imports. vllm is really
    imported (a broken install, e.g. torchvision built for another torch, fails there); the
    others are found without importing them, which is enough and keeps doctor fast."""
    found = importlib.util.find_spec(module) is not None
    out: dict[str, Any] = {"installed": found, "version": _dist_version(dist) if found else None,
                           "works": found, "error": None}
    if found and module == "vllm":
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - any failure means the backend cannot run
            out["works"], out["error"] = False, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return out


def _devices() -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    gpus = []
    for i in range(torch.cuda.device_count() if cuda else 0):
        p = torch.cuda.get_device_properties(i)
        gpus.append({"index": i, "name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                     "capability": f"{p.major}.{p.minor}"})
    return {
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": cuda,
        "cuda_version": torch.version.cuda,
        "cuda_devices": gpus,
        "bf16_on_cuda": bool(cuda and torch.cuda.is_bf16_supported()),
        "device_auto": "cuda" if cuda else "cpu",  # what device=auto picks
    }


def collect() -> dict[str, Any]:
    """The facts doctor reports, as plain data."""
    import torch

    extras = {name: _extra(mod, dist) for name, (mod, dist, _) in EXTRAS.items()}
    backends = {"torch": True, **{b: extras[e]["works"] for b, e in BACKEND_EXTRAS.items()}}
    problems = [f"{name}: {x['error']}" if x["installed"] else f"{name} not installed ({EXTRAS[name][2]})"
                for name, x in extras.items() if not x["works"]]
    mode = os.environ.get("WANDB_MODE") or None
    return {
        "entropyctl": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {"torch": torch.__version__, "transformers": _dist_version("transformers"),
                     **{EXTRAS[name][1]: x["version"] for name, x in extras.items()}},
        "devices": _devices(),
        "backends": backends,
        "extras": extras,
        # WANDB_MODE as the environment sets it (None: unset, wandb's own default applies)
        "wandb_mode": mode,
        "notes": problems,
    }


def _text(facts: dict[str, Any]) -> str:
    d = facts["devices"]
    v = facts["versions"]
    lines = [f"entropyctl {facts['entropyctl']} · python {facts['python']} · {facts['platform']}",
             "versions:  " + ", ".join(f"{k} {val or '-'}" for k, val in v.items()),
             f"cpu:       {d['cpu_cores']} cores, torch uses {d['torch_threads']} threads"]
    if d["cuda_available"]:
        for g in d["cuda_devices"]:
            lines.append(f"cuda:{g['index']}:    {g['name']}, {g['memory_gib']} GiB, capability {g['capability']}")
        lines.append(f"           CUDA {d['cuda_version']}, bf16 {'yes' if d['bf16_on_cuda'] else 'no'}")
    else:
        lines.append("cuda:      not available (device=auto runs on the CPU)")
    lines.append("backends:  " + ", ".join(f"{k} {'ok' if ok else 'no'}" for k, ok in facts["backends"].items()))
    lines.append("extras:    " + ", ".join(f"{k} {'ok' if x['works'] else 'no'}" for k, x in facts["extras"].items()))
    lines.append(f"wandb:     WANDB_MODE={facts['wandb_mode'] or '(unset)'}")
    lines += [f"note:      {n}" for n in facts["notes"]]
    return "\n".join(lines)


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the facts as one JSON object.")] = False,
) -> None:
    """What this machine can run: versions, CPU/CUDA devices, rollout backends, extras, wandb mode.

    Example: entropyctl doctor --json
    """
    facts = collect()
    typer.echo(json.dumps(facts, indent=1) if as_json else _text(facts))
