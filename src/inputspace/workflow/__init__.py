"""Workflow glue: the jobs' harness, the config, scheduler diagnoses, recovery."""
