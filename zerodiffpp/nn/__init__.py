"""Building blocks: the diffusion schedule, networks, losses, training helpers, the softmax classifiers."""
