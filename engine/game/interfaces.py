"""What passes between the episode loop and the players (the record a game leaves is `engine.game.record`).

A persuader and a target are interfaces (abstract classes here), so rule-based, language-model and human
players all plug into the same loop. The persuader only ever receives a `PersuaderView`, built so that in the
*hidden* condition it cannot see the target's preferences or knowledge.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from engine.game.moves import Move
from engine.game.scenario import Fact, Scenario, fact_key

if TYPE_CHECKING:
    from engine.game.record import Refusal

CONDITIONS = ("hidden", "revealed")
RULE_SETS = ("lab", "mindgames")
"""`lab`: the lab's protocol (DESIGN.md 1); `mindgames`: MindGames' exactly (engine.game.mindgames)."""


@dataclass(frozen=True)
class Statement:
    """Something the target said that a persuader may update its belief on.

    kinds: `preference` (attribute, value -1/0/+1), `choice` (proposal), `knows` (fact, 1 yes / 0 no),
    `accepted` (fact, 1 took the disclosure in / 0 doubted it), `declined` (what it would not answer).
    """

    kind: str
    subject: str
    value: int | str | None = None

    def text(self) -> str:
        return f"{self.kind} {self.subject}" + ("" if self.value is None else f" {self.value}")

    @classmethod
    def from_text(cls, text: str) -> Statement:
        kind, subject, *rest = text.split(" ")
        value: int | str | None = None
        if rest:
            raw = rest[0]
            value = int(raw) if raw.lstrip("+-").isdigit() else raw
        return cls(kind, subject, value)


HUMAN_BRIEF_HEADER = "== Your brief =="  # starts a human player's first prompt (the TUI moves the brief to its panel)


@dataclass
class TargetReply:
    text: str
    statements: list[Statement] = field(default_factory=list)
    usage: dict[str, Any] | None = None


@dataclass
class PersuaderTurn:
    """One persuader message with everything behind it that a trajectory records."""

    message: str
    moves: list[Move] = field(default_factory=list)
    reasoning: str = ""
    belief: dict[str, Any] | None = None
    counterfactual: dict[str, Any] | None = None
    raw: str = ""
    parse_ok: bool = True
    parse_error: str = ""
    usage: dict[str, Any] | None = None


@dataclass(frozen=True)
class HiddenState:
    """The target's side of a scenario: given to a persuader only in the *revealed* condition."""

    preferences: dict[str, float]
    target_knows: frozenset[Fact]
    personality: str | None = None  # the rule-based target's personality, when the persuader may know it


def revealed_state(scenario: Scenario, condition: str, personality: str | None = None) -> HiddenState | None:
    """What the persuader is told of the target: its side of the scenario in *revealed*, nothing in *hidden*."""
    if condition != "revealed":
        return None
    return HiddenState(dict(scenario.preferences), scenario.target_knows, personality)


@dataclass
class Exchange:
    """One finished turn as the persuader may see it: what it said and what came back."""

    message: str
    moves: list[Move]
    reply: str
    statements: list[Statement]
    refused: list[Refusal]


@dataclass
class PersuaderView:
    scenario: Scenario  # the persuader's side only: preferences empty, target_knows empty
    condition: str
    turn: int  # 1-based number of the turn about to be played
    history: list[Exchange]
    revealed: HiddenState | None = None

    @property
    def turns_left(self) -> int:
        return self.scenario.max_turns - self.turn + 1


def persuader_side(scenario: Scenario) -> Scenario:
    """The scenario without the target's hidden state, which is what a persuader is handed.

    Its proposals come in id order, so that no persuader's play (its tie-breaks, the order it discloses in)
    depends on the order a scenario file happens to list them: outcomes must not (DESIGN.md 1).
    """
    proposals = tuple(sorted(scenario.proposals, key=lambda p: p.id))
    return replace(scenario, proposals=proposals, preferences={}, target_knows=frozenset())


class Persuader(abc.ABC):
    """A player that tries to bring the target to the goal. One instance plays one game at a time."""

    name: str = "persuader"

    def start(self, view: PersuaderView, seed: int) -> None:  # noqa: B027 - optional hook
        """Called once before the first turn."""

    @abc.abstractmethod
    def act(self, view: PersuaderView) -> PersuaderTurn: ...


class Target(abc.ABC):
    """The simulated (or real) person. Knowledge is tracked here so every kind of target scores alike."""

    name: str = "target"
    rules: str = "lab"  # the rule set (RULE_SETS); the episode loop sets it, a target may answer by it

    def start(self, scenario: Scenario, personality: str, seed: int) -> None:
        self.scenario = scenario
        self.personality = personality
        self.knows: set[Fact] = set(scenario.target_knows)
        self.favourite: str | None = None

    @abc.abstractmethod
    def respond(self, message: str, moves: list[Move], turn: int) -> TargetReply:
        """Answer a persuader message whose disclosures are all true (lies never reach a target)."""

    @abc.abstractmethod
    def choose(self) -> tuple[str, str]:
        """The final choice and the words that announce it."""

    def state(self) -> dict[str, Any]:
        """Ground truth after a turn, for scoring only: never shown to the persuader."""
        from engine.game.rules import values

        vals = values(self.scenario, self.scenario.preferences, self.knows)
        return {
            "knows": sorted(fact_key(f) for f in self.knows),
            "values": vals,
            "favourite": self.favourite,
        }


__all__ = [
    "CONDITIONS",
    "Exchange",
    "HiddenState",
    "Persuader",
    "PersuaderTurn",
    "PersuaderView",
    "RULE_SETS",
    "Statement",
    "Target",
    "TargetReply",
    "persuader_side",
]
