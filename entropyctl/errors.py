"""The errors every command reports in one line, and the exit codes they map to.

A leaf module: it imports nothing of entropyctl, so any layer may raise these."""


class BadInput(ValueError):
    """A bad command line, config value or input file, phrased for the user in one line that
    names the problem and what to do. Exit 2, raised before any run directory exists."""


class Divergence(RuntimeError):
    """Non-finite logits, loss, gradients or weights: the run stops as `diverged`."""
