"""Loading a policy from a local checkpoint directory, and the forward pass every stage shares.
Model-specific builders (the lab's Llama) are plugins under their own package (`lab/`)."""
