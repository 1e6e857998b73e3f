"""Model access: model sources, preparing and loading a model, its vocabulary, prompts."""
