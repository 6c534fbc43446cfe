"""The command line: `main` (Typer app), `train_cmd` (the Hydra glue of train/pretrain/resume),
one module per analysis command. The top of the import graph: it may import every other side,
and nothing imports it."""
