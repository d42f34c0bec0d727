"""Workflows: deterministic orchestration of governed runs and rollouts."""
