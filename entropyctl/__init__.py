"""entropyctl: experiment tracking for entropy collapse in RL of language models.

Train with any intervention (`entropyctl train`), fit R = -a*exp(H) + b on any run
(`entropyctl fit-law`), compare interventions across seeds (`entropyctl compare`).
"""

__version__ = "0.1.0"
