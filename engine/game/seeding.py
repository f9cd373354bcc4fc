"""Episode seeds: all of an episode's randomness derives from (run seed, scenario id, repeat).

Deriving from the scenario id (not from the episode's position) makes the draws of different scenarios and repeats
independent, which the Wilson intervals assume; leaving the agent out makes them identical for every agent on the
same episode, the pairing McNemar's test needs. The run seed gives independent replications of a whole run.
"""

from __future__ import annotations

import hashlib
import random


def episode_seed(run_seed: int, scenario_id: str, repeat: int) -> int:
    """A stable 31-bit seed (sha256, not `hash()`, so every process and platform derives the same one)."""
    digest = hashlib.sha256(f"episode|{run_seed}|{scenario_id}|{repeat}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


def personality_rng(seed: int) -> random.Random:
    """The stream a 'mix' personality is drawn from: apart from the players' own (`{seed}:target`, ...)."""
    return random.Random(f"{seed}:personality")
