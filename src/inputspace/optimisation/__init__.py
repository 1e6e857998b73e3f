"""Optimising input embeddings: the engine, what a run records, its tables."""
