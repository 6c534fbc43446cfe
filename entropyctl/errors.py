"""Errors the round loop reports by status rather than by traceback."""


class Divergence(RuntimeError):
    """Non-finite logits, loss, gradients or weights: the run stops as `diverged`."""
