"""Simulated (and real) people who play the target."""
