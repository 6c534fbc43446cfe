"""Free functions over tensors and the carriers that move between stages: log-probs,
entropy, advantages, loss aggregation and KL estimators (spec §1, §3, §5). No I/O, no models,
no config beyond small dataclasses; imports only torch and errors."""
