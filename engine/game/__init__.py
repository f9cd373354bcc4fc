"""The game: scenarios, rules, moves, the records a game leaves, and the episode loop."""
