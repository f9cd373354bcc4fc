"""What a persuader may reply on one turn, as a JSON schema (API models) and as a grammar (local models).

Both are built per turn from the scenario the persuader sees: the lab's move names, the scenario's own proposal
and attribute ids, and only TRUE disclosures, so a model decoding under them cannot name a move, a proposal or an
attribute that does not exist, nor state a false effect. The sections follow the reply format of the one prompt
builder (`engine.players.prompts`): `full` is REASONING, COUNTERFACTUAL, MOVES, MESSAGE; `compact` is MOVES and
MESSAGE; `moves` is MOVES alone (the player renders the message, as the planner does); a self-belief persuader
writes BELIEF first. A structured reply is read back into the free-text format
(`json_reply_text`), so both paths end in the same `parse_reply` and the same PersuaderTurn.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from engine.errors import LabError
from engine.game.interfaces import Exchange, PersuaderView, Statement
from engine.game.moves import MoveSyntaxError, format_reply, parse_move
from engine.game.scenario import Scenario, fact_key

REPLY_FORMATS = ("full", "compact", "moves")
_BODY = {
    "full": ("REASONING", "COUNTERFACTUAL", "MOVES", "MESSAGE"),
    "compact": ("MOVES", "MESSAGE"),
    "moves": ("MOVES",),  # the player renders the message from the moves, as the planner does
}


def reply_sections(reply: str = "full", self_belief: bool = False) -> tuple[str, ...]:
    """The labelled sections of a reply in this format, in the order they are written."""
    if reply not in REPLY_FORMATS:
        raise LabError(f"unknown reply format '{reply}' (known: {', '.join(REPLY_FORMATS)})")
    return ("BELIEF", *_BODY[reply]) if self_belief else _BODY[reply]


def writes_message(reply: str) -> bool:
    """Whether the model writes the MESSAGE in this reply format (`moves`: the player renders it from the moves)."""
    return "MESSAGE" in reply_sections(reply)


def move_choices(scenario: Scenario, spent: Collection[str] = ()) -> list[str]:
    """Every move the persuader may make in this scenario, as the text `parse_move` reads; disclosures only true.

    `spent` (from `held_moves`) leaves out the moves the target has already answered for good, and `conclude`
    or disclosures where the persuader holds them back (`conclude=stated`, `disclose=stated`)."""
    facts = [(p, a) for p in scenario.proposal_ids for a in scenario.attribute_ids]
    return [
        *(f"disclose {fact_key(f)}={scenario.effects[f[0]][f[1]]:+d}" for f in facts if f"disclose {fact_key(f)}" not in spent),
        *(f"ask_preference {a}" for a in scenario.attribute_ids if f"ask_preference {a}" not in spent),
        *(f"ask_knowledge {fact_key(f)}" for f in facts if f"ask_knowledge {fact_key(f)}" not in spent),
        "ask_choice",
        "appeal",
        *(["conclude"] if "conclude" not in spent else []),
    ]


def spent_moves(history: Iterable[Exchange]) -> set[str]:
    """Moves whose answer the persuader already has and cannot change, from what the target said (its statements).

    A stated preference does not change, so asking it again tells nothing; a fact the target has taken in or says it
    knows is not news, so disclosing it or asking about it again changes nothing. A declined question and a doubted
    disclosure stay open (a reserved target may answer next time; a skeptical one believes a repeat), and so does
    `ask_choice`, whose answer moves with the game. `disclose` and `ask_knowledge` are named without an effect."""
    spent = set()
    for st in (st for exchange in history for st in exchange.statements):
        if st.kind == "preference":
            spent.add(f"ask_preference {st.subject}")
        if st.kind == "knows" or (st.kind == "accepted" and st.value == 1):
            spent.add(f"ask_knowledge {st.subject}")
        if st.kind in ("knows", "accepted") and st.value == 1:
            spent.add(f"disclose {st.subject}")
    return spent


CONCLUDE_RULES = ("any", "stated")  # when a held reply may `conclude`: at any turn, or once the goal is just chosen


def names_goal(statements: Iterable[Statement], goal: str) -> bool:
    """Whether one reply's statements name the goal as the target's choice."""
    return any(st.kind == "choice" and st.subject == goal for st in statements)


def goal_just_stated(history: Sequence[Exchange], goal: str) -> bool:
    """Whether the target's last reply named the goal as its choice: the one state in which `conclude=stated`
    lets a model end the game. A model that concludes while the target still prefers a rival loses the game on
    the spot, which is how finetuned SmolLM2 adapters lost most of their held-out games."""
    return bool(history) and names_goal(history[-1].statements, goal)


DISCLOSE_RULES = ("any", "stated")  # which true disclosures a held reply may make: any, or none that is known to hurt


def harmful_disclosures(said: Iterable[Statement], scenario: Scenario,
                        preferences: Mapping[str, float] | None = None) -> set[str]:
    """`disclose` moves that the target's own words show cannot help: the one state in which `disclose=stated`
    holds a true disclosure back.

    Once the target has said how it values an attribute (a `preference` statement among `said`, everything it
    said so far; in the revealed condition the persuader is also given `preferences`), disclosing an effect on it
    that lowers the goal's value or raises a rival's can only move the target away from the goal: the target picks
    the unique best proposal, so a smaller lead never helps. This takes the target at its word; the planner, whose
    belief allows a misheard answer, still makes such a disclosure now and then as a hedge. Finetuned SmolLM2
    adapters made them in 80 of 100 held-out games, after asking the very preference that ruled them out. Named as
    `spent_moves` names them (no effect)."""
    known = dict(preferences or {})
    for st in said:
        if st.kind == "preference" and isinstance(st.value, (int, float)):
            known[st.subject] = st.value
    harmful = set()
    for p in scenario.proposal_ids:
        for a in (a for a in scenario.attribute_ids if a in known):
            change = known[a] * scenario.effects[p][a]
            if change < 0 if p == scenario.goal else change > 0:
                harmful.add(f"disclose {fact_key((p, a))}")
    return harmful


def rule_options(conclude: str = "any", disclose: str = "any") -> dict[str, str]:
    """The menu's rules that differ from `any`, as a player spec's options (`conclude=stated`): what names a player
    and what `improve` writes into its specs. An unknown value is a LabError, before any game starts."""
    for option, rule, known in (("conclude", conclude, CONCLUDE_RULES), ("disclose", disclose, DISCLOSE_RULES)):
        if rule not in known:
            raise LabError(f"{option}={rule}: unknown (known: {', '.join(known)})")
    return {option: rule for option, rule in (("conclude", conclude), ("disclose", disclose)) if rule != "any"}


def held_moves(view: PersuaderView, *, fresh: bool = True, conclude: str = "any", disclose: str = "any") -> set[str]:
    """The moves a turn's menu leaves out (`move_choices(scenario, spent=...)`): those the target has answered for
    good (`fresh`), `conclude` under `conclude=stated` unless the target just chose the goal, and under
    `disclose=stated` the disclosures its stated (or, revealed, its given) preferences rule out. One rule for every
    player that plays from the menu: a grammar-held model, an API model's schema, and `random` with these options."""
    held = spent_moves(view.history) if fresh else set()
    if conclude == "stated" and not goal_just_stated(view.history, view.scenario.goal):
        held.add("conclude")
    if disclose == "stated":
        held |= harmful_disclosures((st for ex in view.history for st in ex.statements), view.scenario,
                                    view.revealed.preferences if view.revealed is not None else None)
    return held


def reply_schema(
    scenario: Scenario, reply: str = "full", self_belief: bool = False, spent: Collection[str] = ()
) -> dict[str, Any]:
    """A strict JSON schema of one reply (every property required, no others), as both APIs accept it."""
    moves = {"type": "array", "items": {"type": "string", "enum": move_choices(scenario, spent)}}
    properties = {s.lower(): moves if s == "MOVES" else {"type": "string"} for s in reply_sections(reply, self_belief)}
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


MAX_MOVES = 4  # moves a grammar-held reply may make in one turn
MOVE_TOKENS = 8  # about the most tokens one move takes (`disclose B.bonding=-1`)
LABEL_TOKENS = 5  # about the most tokens a section label takes (`\nCOUNTERFACTUAL: `)
SECTION_TOKENS = {"BELIEF": 40, "REASONING": 32, "COUNTERFACTUAL": 24}  # the free-text lines before MOVES
MESSAGE_TOKENS = 48  # the planner's messages, which trained models learn from, take at most 43 (SmolLM2's tokenizer)


def reply_grammar(
    scenario: Scenario, reply: str = "full", self_belief: bool = False, max_tokens: int = 160,
    spent: Collection[str] = (),
) -> str:
    """A Lark grammar (llguidance's dialect) of one free-text reply, for a local model to decode under.

    The labelled lines come in the format's order; MOVES is `none` or up to MAX_MOVES moves from `move_choices`
    (a disclosure may also be written bare, `disclose B.cost`, as training data writes it: still the true effect).
    The free-text lines are capped in tokens so that MOVES and a MESSAGE fit in `max_tokens`, and the MESSAGE at
    MESSAGE_TOKENS (a CPU writes every token of a rambling message); a budget too small for all of it still ends
    every reply with MOVES and MESSAGE lines, only shorter ones.
    """
    sections = reply_sections(reply, self_belief)
    n_moves = max(1, min(MAX_MOVES, max_tokens // 4 // MOVE_TOKENS))
    used = LABEL_TOKENS * len(sections) + n_moves * MOVE_TOKENS
    rules, parts = [], []
    for i, section in enumerate(sections):
        label = ("\\n" if i else "") + f"{section}: "
        if section == "MOVES":
            parts.append(f'"{label}" moves')
            continue
        name = section.lower()
        if section == "MESSAGE":
            cap, pattern = max(4, min(MESSAGE_TOKENS, max_tokens - used)), "/[^\\n]+/"
        else:
            cap, pattern = min(SECTION_TOKENS[section], max_tokens // 8), "/[^\\n]*/"
            used += cap
        parts.append(f'"{label}" {name}')
        rules.append(f"{name}[max_tokens={cap}]: {pattern}")
    moves = " | ".join("move" + ' "; " move' * n for n in range(n_moves))
    choices = " | ".join(json.dumps(m) for m in _grammar_moves(scenario, spent))
    return "\n".join([f"start: {' '.join(parts)}", f'moves: "none" | {moves}', f"move: {choices}", *rules]) + "\n"


def _grammar_moves(scenario: Scenario, spent: Collection[str] = ()) -> list[str]:
    """`move_choices` and each disclosure also without its stated effect (then the true one is meant)."""
    choices = move_choices(scenario, spent)
    return [c.split("=", 1)[0] for c in choices if c.startswith("disclose ")] + choices


def json_reply_text(text: str, scenario: Scenario, reply: str = "full", self_belief: bool = False) -> str:
    """A structured (JSON) reply as the free-text reply; text that is not such a JSON object comes back unchanged.

    Unchanged text then goes through `parse_reply` like any free-text reply, which names what is missing.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text
    if not isinstance(data, dict):
        return text
    moves = data.get("moves") or []
    fields = {s: str(data.get(s.lower()) or "") for s in reply_sections(reply, self_belief) if s != "MOVES"}
    try:
        parsed = [parse_move(str(m), scenario) for m in moves] if isinstance(moves, list) else None
    except MoveSyntaxError:  # a move the schema should have ruled out: written back for parse_reply to name
        parsed = None
    if parsed is None:
        lines = [f"{s}: {v}" for s, v in fields.items() if s != "MESSAGE"]
        moves_text = "; ".join(map(str, moves)) if isinstance(moves, list) else str(moves)
        message = [f"MESSAGE: {fields['MESSAGE']}"] if "MESSAGE" in fields else []
        return "\n".join([*lines, f"MOVES: {moves_text or 'none'}", *message])
    return format_reply(
        fields.get("MESSAGE"),  # None: the format has no MESSAGE line
        parsed,
        reasoning=fields.get("REASONING", ""),
        counterfactual=fields.get("COUNTERFACTUAL", ""),
        belief=fields.get("BELIEF", ""),
    )
