"""The embedded lab: a synthetic verifiable task with several answer formats, a character
tokenizer and a tiny Llama-architecture model that entropyctl pretrains itself. It shows
entropy collapse and format convergence in minutes on 2 CPU cores, with no downloads."""
