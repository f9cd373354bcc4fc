"""The players: the spec grammar and registry, the belief state, persuaders and targets."""
