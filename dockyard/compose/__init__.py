"""Compose: multi-container applications from one YAML file, converged through the Engine API."""
