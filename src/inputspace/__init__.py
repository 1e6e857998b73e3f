"""inputspace: gradient descent in the input-embedding space of language models."""

__version__ = "0.1.0"
