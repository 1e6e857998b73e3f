"""The study's experiments over runs and models: case study, landscape, claims, figures."""
