"""The one error path: the exception types, the one-line reporter, the exit codes and `--debug`.

A leaf module: it imports nothing of entropyctl, so any layer may raise these, and every
command ends through `report` / `exit_code` here (docs/reliability.md):

    0 done   1 failed (a bug or an unexpected error)   2 bad input   3 diverged   130 interrupted

Bad input is refused in one line that names the problem and its fix, before anything is
written. `--debug` (or HYDRA_FULL_ERROR=1) prints the traceback above that line.
"""

from __future__ import annotations

import os
import sys
import traceback
from contextlib import contextmanager

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
_DEBUG_VARS = ("ENTROPYCTL_DEBUG", "HYDRA_FULL_ERROR")


class BadInput(ValueError):
    """A bad command line, config value or input file, phrased for the user in one line that
    names the problem and what to do. Exit 2, raised before any run directory exists."""


class Divergence(RuntimeError):
    """Non-finite logits, loss, gradients or weights: the run stops as `diverged`."""


def debug_enabled() -> bool:
    return any(os.environ.get(v) == "1" for v in _DEBUG_VARS)


def enable_debug() -> None:
    for v in _DEBUG_VARS:
        os.environ[v] = "1"


@contextmanager
def debug_scope():
    """`--debug` lasts one command: an in-process caller (a test, a notebook) runs the next
    command as it asked, not in the previous one's debug mode."""
    saved = {v: os.environ.get(v) for v in _DEBUG_VARS}
    try:
        yield
    finally:
        for v, value in saved.items():
            if value is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = value


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _attr(e: BaseException, name: str):
    """`name` set on `e` or on an exception it interrupted (a second Ctrl-C while the run was
    recording the first still knows its run directory)."""
    seen = 0
    while e is not None and seen < 10:
        if getattr(e, name, None) is not None:
            return getattr(e, name)
        e, seen = e.__context__, seen + 1
    return None


def _is_click(e: BaseException, name: str) -> bool:
    """A click exception (`click.UsageError`, or the copy Typer vendors as typer._click)."""
    return any(c.__name__ == name and "click" in c.__module__ for c in type(e).__mro__)


def _is_usage_error(e: BaseException) -> bool:
    return _is_click(e, "UsageError")


def _is_abort(e: BaseException) -> bool:
    return _is_click(e, "Abort")


def classify(e: BaseException) -> tuple[int, str]:
    """(exit code, the one line) for an exception that ends a command."""
    where = _attr(e, "run_dir")
    if isinstance(e, (KeyboardInterrupt,)) or _is_abort(e):
        if where is not None:
            return EXIT_INTERRUPTED, f"interrupted; continue it with: entropyctl resume {where}"
        return EXIT_INTERRUPTED, "interrupted before a run directory was created; nothing was written"
    if _is_usage_error(e):
        ctx = getattr(e, "ctx", None)
        cmd = ctx.command_path if ctx is not None else "entropyctl"
        text = (e.format_message() if hasattr(e, "format_message") else first_line(e)).strip().splitlines()[0]
        return EXIT_BAD_INPUT, f"{text[:1].lower()}{text[1:].rstrip('.')}; see {cmd} --help"
    if isinstance(e, (BadInput, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)):
        if isinstance(e, OSError) and not isinstance(e, BadInput) and e.filename:
            return EXIT_BAD_INPUT, f"{e.filename}: {e.strerror or first_line(e)}; check the path"
        return EXIT_BAD_INPUT, first_line(e)
    if isinstance(e, Divergence):
        return EXIT_DIVERGED, (f"run diverged in round {_attr(e, 'round')}: {first_line(e)}; status, round "
                               f"and reason are in {where}/run.json")
    msg = f"{type(e).__name__}: {first_line(e)}"
    if where is not None:
        msg = f"run failed: {msg} (status failed in {where}/run.json; fix the cause, then entropyctl resume {where})"
    elif not isinstance(e, OSError):
        msg = f"internal error: {msg}"
    return EXIT_FAILED, msg + ("" if debug_enabled() else "; rerun with --debug for the traceback")


def report(e: BaseException, prefix: str = "") -> int:
    """Print the one line (the traceback first under --debug) and return the exit code."""
    code, line = classify(e)
    if debug_enabled() and not _is_usage_error(e):
        traceback.print_exception(e)
    print(f"error: {prefix}{line}", file=sys.stderr, flush=True)
    return code


def say(line: str) -> None:
    """A note on stderr that is not an error (a skipped run, a warning)."""
    print(line, file=sys.stderr, flush=True)
