"""The human persuader's move builder: pick a move, then its proposal and attribute from the scenario's own lists.

It writes the same `[disclose A.cost=+1; ask_choice] message` text a fast typist types (through the engine's one
move formatter), so the player's `ask` and the engine's parser stay the only path a move takes. Only true facts
are offered for `disclose`, each with its true effect filled in: a lie cannot be built, only typed.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Button, Select

from engine.game.moves import MOVE_KINDS, Move, disclose
from engine.game.scenario import Scenario

NEEDS_PROPOSAL = ("disclose", "ask_knowledge")  # a fact: a proposal, then one of its attributes
NEEDS_ATTRIBUTE = ("disclose", "ask_knowledge", "ask_preference")


class MoveBuilder(Horizontal):
    """A row of dropdowns and an Add button; `Built` carries the move for the pane to add to the message box."""

    DEFAULT_CSS = """
    MoveBuilder { height: 1; padding: 0 1; }
    MoveBuilder Select { width: 1fr; height: 1; margin-right: 1; }
    MoveBuilder SelectCurrent { height: 1; }
    MoveBuilder #move-kind { width: 17; }
    MoveBuilder #move-attribute { width: 2fr; }  /* `bonding=+1` needs more room than a proposal's id */
    MoveBuilder Button { width: auto; min-width: 5; }
    """

    class Built(Message):
        """A move was built: the pane adds it to the message being written."""

        def __init__(self, move: Move) -> None:
            super().__init__()
            self.move = move

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario: Scenario | None = None

    def compose(self) -> ComposeResult:
        yield Select([(k, k) for k in MOVE_KINDS], value="disclose", allow_blank=False, id="move-kind", compact=True,
                     tooltip="the move to add")
        yield Select([("-", "")], allow_blank=False, id="move-proposal", compact=True, tooltip="the proposal")
        yield Select([("-", "")], allow_blank=False, id="move-attribute", compact=True, tooltip="the attribute")
        yield Button("Add", id="move-add", compact=True, tooltip="add this move to the message below")

    def set_scenario(self, scenario: Scenario) -> None:
        """Fill the lists from this game's scenario (proposals by id and name, attributes by id)."""
        self.scenario = scenario
        self.query_one("#move-proposal", Select).set_options([(f"{p.id} {p.name}", p.id) for p in scenario.proposals])
        self._refresh()

    @on(Select.Changed, "#move-kind")
    @on(Select.Changed, "#move-proposal")
    def _refresh(self) -> None:
        """Show only the dropdowns the chosen move needs; for a fact, only the chosen proposal's attributes, and for
        `disclose` each with its true effect (the one a persuader may state)."""
        s = self.scenario
        if s is None:
            return
        kind = str(self.query_one("#move-kind", Select).value)
        proposal = self.query_one("#move-proposal", Select)
        attribute = self.query_one("#move-attribute", Select)
        proposal.display = kind in NEEDS_PROPOSAL
        attribute.display = kind in NEEDS_ATTRIBUTE
        if kind == "ask_preference":
            attribute.set_options([(a, a) for a in s.attribute_ids])
        elif kind in NEEDS_PROPOSAL:
            facts = [f for f in s.facts if f[0] == proposal.value]
            label = (lambda f: f"{f[1]}={s.effect(f):+d}") if kind == "disclose" else (lambda f: f[1])
            attribute.set_options([(label(f), f[1]) for f in facts])

    def build(self) -> Move:
        """The move the dropdowns describe; a disclosure states the scenario's true effect."""
        kind = str(self.query_one("#move-kind", Select).value)
        attribute = str(self.query_one("#move-attribute", Select).value)
        if kind == "ask_preference":
            return Move(kind, attribute=attribute)
        if kind in NEEDS_PROPOSAL:
            assert self.scenario is not None
            fact = (str(self.query_one("#move-proposal", Select).value), attribute)
            return disclose(fact, self.scenario.effect(fact)) if kind == "disclose" else Move(kind, fact=fact)
        return Move(kind)

    @on(Button.Pressed, "#move-add")
    def _add(self, event: Button.Pressed) -> None:
        event.stop()
        if self.scenario is not None:
            self.post_message(self.Built(self.build()))
