"""What passes between the episode loop and the players, and the records a game leaves behind.

A persuader and a target are interfaces (abstract classes here), so rule-based, language-model and human
players all plug into the same loop. The persuader only ever receives a `PersuaderView`, built so that in the
*hidden* condition it cannot see the target's preferences or knowledge.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field, replace
from typing import Any

from engine.moves import Move
from engine.scenario import Fact, Scenario, fact_key

CONDITIONS = ("hidden", "revealed")


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


@dataclass
class Exchange:
    """One finished turn as the persuader may see it: what it said and what came back."""

    message: str
    moves: list[Move]
    reply: str
    statements: list[Statement]
    refused: list[str]


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
    """The scenario without the target's hidden state, which is what a persuader is handed."""
    return replace(scenario, preferences={}, target_knows=frozenset())


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
        from engine.rules import values

        vals = values(self.scenario, self.scenario.preferences, self.knows)
        return {
            "knows": sorted(fact_key(f) for f in self.knows),
            "values": vals,
            "favourite": self.favourite,
        }


@dataclass
class Turn:
    index: int
    message: str
    moves: list[Move]
    refused: list[str]
    target_reply: str
    statements: list[Statement]
    target_state: dict[str, Any]
    reasoning: str = ""
    belief: dict[str, Any] | None = None
    counterfactual: dict[str, Any] | None = None
    raw: str = ""
    parse_ok: bool = True
    parse_error: str = ""
    usage: dict[str, Any] | None = None
    target_usage: dict[str, Any] | None = None
    latency_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The turn in the trajectory schema of DESIGN.md 2."""
        out: dict[str, Any] = {
            "index": self.index,
            "belief": self.belief,
            "reasoning": self.reasoning,
            "counterfactual": self.counterfactual,
            "moves": [m.text() for m in self.moves],
            "message": self.message,
            "target_reply": self.target_reply,
            "statements": [s.text() for s in self.statements],
            "target_state": self.target_state,
        }
        if self.refused:
            out["refused"] = self.refused
        if not self.parse_ok:
            out["parse_ok"] = False
            out["parse_error"] = self.parse_error
        if self.raw:
            out["raw"] = self.raw
        if self.usage:
            out["usage"] = self.usage
        if self.target_usage:
            out["target_usage"] = self.target_usage
        return out


@dataclass
class Outcome:
    choice: str
    success: bool
    turns: int
    violations: int = 0
    mental_state_appeals: int = 0
    parse_failures: int = 0
    final_words: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "choice": self.choice,
            "success": self.success,
            "turns": self.turns,
            "violations": self.violations,
            "mental_state_appeals": self.mental_state_appeals,
            "parse_failures": self.parse_failures,
        }


@dataclass
class Episode:
    id: str
    scenario: Scenario
    persuader: str
    target: str
    personality: str
    condition: str
    seed: int
    kind: str = "play"
    turns: list[Turn] = field(default_factory=list)
    outcome: Outcome | None = None
    status: str = "running"  # running | finished | interrupted | errored
    error: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_trajectory(self) -> dict[str, Any]:
        """One line of a trajectory file (DESIGN.md 2)."""
        return {
            "id": self.id,
            "scenario": self.scenario.to_dict(),
            "persuader": {"name": self.persuader},
            "target": {"kind": self.target, "personality": self.personality, "seed": self.seed},
            "condition": self.condition,
            "turns": [t.to_dict() for t in self.turns],
            "outcome": self.outcome.to_dict() if self.outcome else None,
        }


def turn_from_dict(data: dict[str, Any]) -> Turn:
    """Inverse of `Turn.to_dict`, used by import and the store."""
    from engine.moves import parse_move

    return Turn(
        index=int(data["index"]),
        message=data.get("message", ""),
        moves=[parse_move(m) for m in data.get("moves", [])],
        refused=list(data.get("refused", [])),
        target_reply=data.get("target_reply", ""),
        statements=[Statement.from_text(s) for s in data.get("statements", [])],
        target_state=data.get("target_state") or {},
        reasoning=data.get("reasoning") or "",
        belief=data.get("belief"),
        counterfactual=data.get("counterfactual"),
        raw=data.get("raw", ""),
        parse_ok=data.get("parse_ok", True),
        parse_error=data.get("parse_error", ""),
    )


__all__ = [
    "CONDITIONS",
    "Episode",
    "Exchange",
    "HiddenState",
    "Outcome",
    "Persuader",
    "PersuaderTurn",
    "PersuaderView",
    "Statement",
    "Target",
    "TargetReply",
    "Turn",
    "persuader_side",
    "turn_from_dict",
]
