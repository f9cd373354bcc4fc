"""Baselines with no theory of mind, against which planning persuaders are measured."""

from __future__ import annotations

import random

from engine.game import phrasing
from engine.game.interfaces import Persuader, PersuaderTurn, PersuaderView
from engine.game.moves import Move, disclose

PER_MESSAGE = 3  # disclosures a baseline packs into one message


class RevealAll(Persuader):
    """Discloses every fact, a few per message, then asks for the decision."""

    name = "reveal-all"

    def start(self, view: PersuaderView, seed: int) -> None:
        self.rng = random.Random(f"{seed}:persuader")
        self.queue = list(view.scenario.facts)

    def act(self, view: PersuaderView) -> PersuaderTurn:
        batch, self.queue = self.queue[:PER_MESSAGE], self.queue[PER_MESSAGE:]
        moves: list[Move] = [disclose(f) for f in batch]
        if not self.queue or view.turns_left <= 1:
            moves.append(Move("conclude"))
        return PersuaderTurn(phrasing.persuader_message(view.scenario, moves, self.rng), moves)


class RandomPersuader(Persuader):
    """Random legal moves: one or two per message, concluding at random or on the last turn."""

    name = "random"

    def start(self, view: PersuaderView, seed: int) -> None:
        self.rng = random.Random(f"{seed}:persuader")
        s = view.scenario
        self.options: list[Move] = (
            [disclose(f) for f in s.facts]
            + [Move("ask_preference", attribute=a) for a in s.attribute_ids]
            + [Move("ask_knowledge", fact=f) for f in s.facts]
            + [Move("ask_choice"), Move("appeal")]
        )

    def act(self, view: PersuaderView) -> PersuaderTurn:
        moves = self.rng.sample(self.options, self.rng.choice((1, 2)))
        if view.turns_left <= 1 or self.rng.random() < 0.1:
            moves.append(Move("conclude"))
        return PersuaderTurn(phrasing.persuader_message(view.scenario, moves, self.rng), moves)


def register() -> None:
    from engine.players.registry import register_persuader

    register_persuader("reveal-all", lambda _: RevealAll(), "discloses every fact, three a message")
    register_persuader("random", lambda _: RandomPersuader(), "random legal moves")
