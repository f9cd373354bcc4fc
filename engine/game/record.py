"""The record of a game: one typed model per concept, the one definition of a trajectory line (DESIGN.md 2).

The episode loop builds these, the store writes and reads them, trajectory files are validated into them and
written from them, and `docs/trajectory.schema.json` is generated from them: a field added here reaches every
one of those at once, so no copy can drift. JSON field names are those of the files written before the record
existed, and old spellings still read: a refused lie written as prose, a `scenario_id` instead of a scenario.

Checks that need the scenario (moves and beliefs name its proposals and attributes, the outcome agrees with its
goal) are one model validator on `Episode`; a scenario id resolves through the `ScenarioLibrary` passed as
validation context (`{"library": ..., "cache": {...}}`), or the default library.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from engine.errors import LabError
from engine.game.interfaces import CONDITIONS, RULE_SETS, Statement
from engine.game.moves import Move, parse_move
from engine.game.scenario import Scenario, ScenarioLibrary, fact_key

STATEMENT_KINDS = ("preference", "choice", "knows", "accepted", "declined")
SCHEMA_ID = "https://ptom-lab/trajectory.schema.json"


def _move(value: Any) -> Move:
    """A move from its text (syntax only: the scenario check is `Episode`'s)."""
    if isinstance(value, Move):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("move", "must be a move string like 'disclose A.cost'")
    try:
        return parse_move(value)
    except LabError as exc:
        raise PydanticCustomError("move", str(exc)) from None


def _statement(value: Any) -> Statement:
    if isinstance(value, Statement):
        return value
    if not isinstance(value, str) or value.split(" ", 1)[0] not in STATEMENT_KINDS or " " not in value:
        raise PydanticCustomError("statement", f"must read 'KIND SUBJECT [VALUE]', kinds {', '.join(STATEMENT_KINDS)}")
    return Statement.from_text(value)


def _scenario(value: Any, info: ValidationInfo) -> Scenario:
    """A scenario object as it is, a dict built without the *interesting* check (any game may be recorded), an id
    resolved in the context's library."""
    if isinstance(value, Scenario):
        return value
    context = info.context if isinstance(info.context, dict) else {}
    if isinstance(value, str):
        cache = context.setdefault("cache", {})
        if value not in cache:
            try:
                cache[value] = (context.get("library") or ScenarioLibrary()).get(value)
            except LabError as exc:
                raise PydanticCustomError("scenario", str(exc)) from None
        return cache[value]
    try:
        return Scenario.from_dict(value, "scenario", check_interesting=False)
    except LabError as exc:
        raise PydanticCustomError("scenario", str(exc).partition(": ")[2] or str(exc)) from None  # drop `where`


MoveField = Annotated[
    Move,
    BeforeValidator(_move),
    PlainSerializer(Move.text, return_type=str),
    WithJsonSchema({"type": "string", "description": "a move in the syntax of engine/game/moves.py, e.g. 'disclose B.cost=-1'"}),
]
StatementField = Annotated[
    Statement,
    BeforeValidator(_statement),
    PlainSerializer(Statement.text, return_type=str),
    WithJsonSchema({"type": "string", "pattern": rf"^({'|'.join(STATEMENT_KINDS)}) \S+( \S+)?$",
                    "description": "KIND SUBJECT [VALUE], e.g. 'preference cost -1'"}),
]
ScenarioField = Annotated[
    Scenario,
    BeforeValidator(_scenario),
    PlainSerializer(Scenario.to_dict, return_type=dict),
    WithJsonSchema({
        "description": "the full scenario (scenarios/*.yaml as JSON), or the id of one in scenarios/",
        "anyOf": [
            {"type": "string"},
            {
                "type": "object",
                "required": ["id", "proposals", "attributes", "effects", "preferences", "goal"],
                "properties": {
                    "id": {"type": "string"}, "title": {"type": "string"}, "domain": {"type": "string"},
                    "story": {"type": "string"}, "target_role": {"type": "string"}, "persuader_role": {"type": "string"},
                    "proposals": {"type": "array", "items": {"type": "object", "required": ["id", "name"]}},
                    "attributes": {"type": "array", "items": {"type": "object", "required": ["id", "name"]}},
                    "effects": {"type": "object", "additionalProperties": {"type": "object",
                                "additionalProperties": {"enum": [-1, 0, 1]}}},
                    "preferences": {"type": "object", "additionalProperties": {"type": "number"}},
                    "target_knows": {"type": "array", "items": {"type": "string"}},
                    "goal": {"type": "string"}, "max_turns": {"type": "integer", "minimum": 1},
                },
            },
        ],
    }),
]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class Record(BaseModel):
    """Shared settings: a Python object (scenario, move, statement) may be a field; validators are built on first
    use, not at import, so importing the record costs start-up only the pydantic import."""

    model_config = ConfigDict(arbitrary_types_allowed=True, defer_build=True)


class Belief(Record):
    """What a persuader believes of the target: per attribute P(like/neutral/dislike), its predicted choice."""

    model_config = ConfigDict(extra="allow")
    preferences: dict[str, dict[Literal["like", "neutral", "dislike"], Probability]] = {}
    predicted_choice: str | None = None
    p_goal: Probability | None = None


class Alternative(Record):
    model_config = ConfigDict(extra="allow")
    move: str
    p_goal: Probability | None = None


class Counterfactual(Record):
    """The chosen move with its predicted effect on P(goal), and the best alternatives considered."""

    model_config = ConfigDict(extra="allow")
    move: str = ""
    p_goal_before: Probability | None = None
    p_goal_after: Probability | None = None
    predicted_choice: str | None = None
    alternatives: list[Alternative] = []


class Refusal(Record):
    """A lie the loop refused: the disclosure as stated and the true value of the fact it contradicts."""

    move: MoveField
    true_value: Literal[-1, 0, 1]

    @model_validator(mode="before")
    @classmethod
    def _from_prose(cls, data: Any) -> Any:
        """Files and stores written before the record hold 'disclose A.cost=+1 contradicts the fact A.cost=-1'."""
        if isinstance(data, str):
            move, sep, fact = data.partition(" contradicts the fact ")
            if not sep or "=" not in fact:
                raise PydanticCustomError("refusal", "must be an object with 'move' and 'true_value'")
            return {"move": move, "true_value": int(fact.rpartition("=")[2])}
        return data

    @field_validator("move")
    @classmethod
    def _a_stated_disclosure(cls, move: Move) -> Move:
        if move.kind != "disclose" or move.stated is None:
            raise PydanticCustomError("refusal", "a refused move is a disclosure with a stated effect")
        return move

    def text(self) -> str:
        assert self.move.fact is not None
        return f"{self.move.text()} contradicts the fact {fact_key(self.move.fact)}={self.true_value:+d}"


class Turn(Record):
    """One persuader message, the target's answer and everything behind them."""

    index: int = Field(default=0, description="1-based position; absent (0) in a file: filled in from the position")
    belief: Belief | None = None
    reasoning: str = ""
    counterfactual: Counterfactual | None = None
    moves: list[MoveField] = []
    refused: list[Refusal] = []
    message: str
    target_reply: str
    statements: list[StatementField] = []
    target_state: dict[str, Any] = Field(default={}, description="ground truth after the turn, for scoring only")
    raw: str = ""
    parse_ok: bool = True
    parse_error: str = ""
    usage: dict[str, Any] | None = None
    target_usage: dict[str, Any] | None = None
    latency_ms: float = 0.0

    @field_validator("reasoning", "raw", "parse_error", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("target_state", mode="before")
    @classmethod
    def _null_state(cls, value: Any) -> Any:
        return {} if value is None else value


class Outcome(Record):
    choice: str
    success: bool
    turns: int | None = Field(default=None, description="number of turns; filled in when absent")
    violations: int = 0
    mental_state_appeals: int = 0
    parse_failures: int = 0
    final_words: str = ""


class PersuaderInfo(Record):
    name: str = Field(min_length=1)


class TargetInfo(Record):
    kind: str
    personality: str = ""
    seed: int = 0

    @field_validator("personality", mode="before")
    @classmethod
    def _null_personality(cls, value: Any) -> Any:
        return value or ""

    @field_validator("seed", mode="before")
    @classmethod
    def _null_seed(cls, value: Any) -> Any:
        return value or 0


def _scenario_id_in_schema(schema: dict[str, Any]) -> None:
    """The schema's side of `Episode._shorthands`: `scenario_id` may stand for `scenario`."""
    schema["properties"]["scenario_id"] = {"type": "string", "description": "instead of 'scenario': an id in scenarios/"}
    schema["required"] = [key for key in schema["required"] if key != "scenario"]
    schema["anyOf"] = [{"required": ["scenario"]}, {"required": ["scenario_id"]}]


class Episode(Record):
    """One game: a line of a trajectory file, a session in the store, what the episode loop builds turn by turn."""

    model_config = ConfigDict(json_schema_extra=_scenario_id_in_schema)

    id: str = Field(min_length=1)
    scenario: ScenarioField
    persuader: PersuaderInfo
    target: TargetInfo
    condition: Literal[CONDITIONS]  # type: ignore[valid-type]
    rules: Literal[RULE_SETS] = Field(  # type: ignore[valid-type]
        default="lab", description="the rule set the game was played under (engine/game/interfaces.py RULE_SETS)"
    )
    turns: list[Turn] = []
    outcome: Outcome | None = Field(default=None, description="null only for a stored game that did not finish")
    status: Literal["running", "finished", "interrupted", "errored"] = "finished"
    error: str = ""
    kind: SkipJsonSchema[str] = Field(default="play", exclude=True)  # the store's bookkeeping, not in a line
    meta: SkipJsonSchema[dict[str, Any]] = Field(default={}, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        """`scenario_id` for `scenario`; a bare name for `persuader`, a bare kind for `target`."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("scenario") is None and "scenario_id" in data:
            data["scenario"] = data.pop("scenario_id")
        if isinstance(data.get("persuader"), str):
            data["persuader"] = {"name": data["persuader"]}
        if isinstance(data.get("target"), str):
            data["target"] = {"kind": data["target"]}
        return data

    @model_validator(mode="after")
    def _agrees_with_scenario(self) -> Episode:
        """Fills in what DESIGN.md 2 lets a file leave out (turn index, outcome turns), then checks the rest."""
        for i, turn in enumerate(self.turns):
            turn.index = turn.index or i + 1
        if self.outcome is not None and self.outcome.turns is None:
            self.outcome.turns = len(self.turns)
        problem = scenario_problem(self)
        if problem:
            raise PydanticCustomError("scenario_mismatch", problem)
        return self

    def to_trajectory(self, timing: bool = True) -> dict[str, Any]:
        """The trajectory line (JSON values). Without `timing`, latencies are left out, so that a seeded run
        writes the same bytes every time."""
        exclude = None if timing else {"turns": {"__all__": {"latency_ms"}}}
        return self.model_dump(mode="json", exclude=exclude)


def scenario_problem(episode: Episode) -> str:
    """The first way the episode disagrees with its own scenario, as `field.path: reason`; '' when it agrees."""
    s = episode.scenario
    for i, turn in enumerate(episode.turns):
        at = f"turns[{i}]"
        if turn.index != i + 1:
            return f"{at}.index: must be {i + 1}, got {turn.index}"
        for j, move in enumerate(turn.moves):
            try:
                parse_move(move.text(), s)
            except LabError as exc:
                return f"{at}.moves[{j}]: {exc}"
        for j, refusal in enumerate(turn.refused):
            try:
                parse_move(refusal.move.text(), s)
            except LabError as exc:
                return f"{at}.refused[{j}].move: {exc}"
        for name, value in (("belief", turn.belief), ("counterfactual", turn.counterfactual)):
            if value is not None and value.predicted_choice is not None and value.predicted_choice not in s.proposal_ids:
                return f"{at}.{name}.predicted_choice: unknown proposal '{value.predicted_choice}'"
        for attr in (turn.belief.preferences if turn.belief else {}):
            if attr not in s.attribute_ids:
                return f"{at}.belief.preferences: unknown attribute '{attr}'"
    o = episode.outcome
    if o is None:
        return ""
    if o.choice not in s.proposal_ids:
        return f"outcome.choice: must be a proposal ({', '.join(s.proposal_ids)}), got {o.choice!r}"
    if o.success != (o.choice == s.goal):
        return f"outcome.success: is {o.success} but the choice {o.choice} vs goal {s.goal} says otherwise"
    if o.turns is not None and o.turns != len(episode.turns):
        return f"outcome.turns: is {o.turns} but the conversation has {len(episode.turns)} turns"
    return ""


def refusal(move: Move, scenario: Scenario) -> Refusal | None:
    """The refusal a disclosure earns when its stated effect is not the fact's true one (the no-lying rule)."""
    if move.kind != "disclose" or move.fact is None or move.stated is None:
        return None
    true_value = scenario.effect(move.fact)
    return None if move.stated == true_value else Refusal(move=move, true_value=true_value)


def error_text(exc: ValidationError) -> str:
    """A validation error as one line, `field.path: reason` (the reader puts `file:line: ` in front)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    path = ""
    for part in first["loc"]:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    reason = "missing" if first["type"] == "missing" else first["msg"]
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return (f"{path}: {reason}" if path else reason) + more


def json_schema() -> dict[str, Any]:
    """The trajectory line as a JSON Schema (what `ptom-lab trajectories schema` prints)."""
    schema = Episode.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


__all__ = [
    "Alternative",
    "Belief",
    "Counterfactual",
    "Episode",
    "Outcome",
    "PersuaderInfo",
    "Refusal",
    "STATEMENT_KINDS",
    "TargetInfo",
    "Turn",
    "error_text",
    "json_schema",
    "json_schema_text",
    "refusal",
    "scenario_problem",
]
