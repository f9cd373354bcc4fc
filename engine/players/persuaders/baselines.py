"""Baselines with no theory of mind, against which planning persuaders are measured."""

from __future__ import annotations

import random

from engine.game import phrasing
from engine.game.interfaces import Persuader, PersuaderTurn, PersuaderView
from engine.game.moves import Move, disclose, parse_move
from engine.players.reply_schema import held_moves, move_choices, rule_options
from engine.players.spec import PlayerSpec

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
    """Random legal moves: one or two per message, concluding at random or on the last turn.

    With `conclude=stated` or `disclose=stated` it draws from the turn's menu instead, the one a grammar-held model
    picks from (`reply_schema.held_moves`: no move the target has answered for good, and what those options hold
    back): the control that tells what a finetuned model's choices add to the menu's own rules."""

    def __init__(self, conclude: str = "any", disclose: str = "any") -> None:
        self.conclude, self.disclose = conclude, disclose
        self.name = str(PlayerSpec("random", options=rule_options(conclude, disclose)))

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
        options, may_conclude = self.options, True
        if self.conclude != "any" or self.disclose != "any":
            menu = move_choices(view.scenario, held_moves(view, conclude=self.conclude, disclose=self.disclose))
            options = [parse_move(text) for text in menu if text != "conclude"]
            may_conclude = "conclude" in menu
        moves = self.rng.sample(options, self.rng.choice((1, 2)))  # ask_choice and appeal are always offered
        if may_conclude and (view.turns_left <= 1 or self.rng.random() < 0.1):
            moves.append(Move("conclude"))
        return PersuaderTurn(phrasing.persuader_message(view.scenario, moves, self.rng), moves)


def register() -> None:
    from engine.players.registry import register_persuader

    register_persuader("reveal-all", lambda _: RevealAll(), "discloses every fact, three a message")
    register_persuader("random", lambda spec: RandomPersuader(spec.options.get("conclude", "any"),
                                                               spec.options.get("disclose", "any")),
                       "random legal moves (conclude=stated, disclose=stated: from the menu those hold back)",
                       options=("conclude", "disclose"))
