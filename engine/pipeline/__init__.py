"""The research pipeline: trajectories, data prep, training, evaluation, metrics and the leaderboard."""
