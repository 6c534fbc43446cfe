"""One run of RL rounds: the loop (`loop`) and its stages in data-flow order (rollout, reward,
rescore, update, metrics, evaluate), checkpoints and resume beside the loop (resume calls the
loop, never the reverse), preflight (setup's checks before any run dir). Imports maths,
models, tasks, interventions, runstore, config and errors; never the lab (tasks and models
come through plugins)."""
