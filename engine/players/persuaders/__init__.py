"""Persuader agents: baselines, the planner, language models and the human at the keyboard."""
