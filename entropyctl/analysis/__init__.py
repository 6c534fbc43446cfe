"""Reading logged runs and judging them: log readers (ours, verl, TRL, wandb, generic), the
law fit, compare's statistics and the report. Never imports torch (`fit-law` and `compare`
start in a fraction of a second and run where no torch is installed); may import runstore,
config and errors."""
