"""The move syntax: the one documented way a persuader's message carries structured moves.

Every persuader message is free text plus zero or more moves, so that any target can be played and every
turn scored. A language-model persuader writes its whole reply as labelled sections::

    REASONING: She cares about cost; B is cheaper but she does not know that.
    COUNTERFACTUAL: disclose B.cost=-1 -> P(goal) 0.41 -> 0.78; best alternative ask_preference comfort (0.55)
    MOVES: disclose B.cost=-1; ask_preference comfort
    MESSAGE: Did you know Berlin keeps the cost down? How much does comfort matter to you?

Only MESSAGE is required; a reply with no labels at all is taken as a MESSAGE with no moves. The moves are:

=========================  ==========================================================================
``disclose P.attr=+1``     states how proposal P affects attr (``+1``, ``0`` or ``-1``). Without ``=``
                           the engine states the true effect. A stated effect that is false is a lie:
                           it is refused, never reaches the target, and counts as a violation.
``ask_preference attr``    asks whether the target likes more or less of attr
``ask_knowledge P.attr``   asks whether the target knows how P affects attr
``ask_choice``             asks which proposal the target favours now
``appeal``                 free-text persuasion with no new information
``conclude``               asks the target to decide now; the game ends after this turn
=========================  ==========================================================================

Moves are separated by ``;`` (or new lines) and may be written with or without square brackets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.errors import LabError
from engine.game.scenario import Fact, Scenario, fact_key, parse_fact

MOVE_KINDS = ("disclose", "ask_preference", "ask_knowledge", "ask_choice", "appeal", "conclude")
MENTAL_STATE_KINDS = frozenset({"ask_preference", "ask_knowledge", "ask_choice"})
SECTION_LABELS = ("BELIEF", "REASONING", "COUNTERFACTUAL", "MOVES", "MESSAGE")


class MoveSyntaxError(LabError):
    """A move that does not follow the syntax, or names a proposal or attribute the scenario lacks."""


@dataclass(frozen=True)
class Move:
    kind: str
    fact: Fact | None = None  # disclose, ask_knowledge
    attribute: str | None = None  # ask_preference
    stated: int | None = None  # disclose: the effect the persuader states (None: the true one)

    def text(self) -> str:
        if self.kind == "disclose":
            assert self.fact is not None
            return f"disclose {fact_key(self.fact)}" + ("" if self.stated is None else f"={self.stated:+d}")
        if self.kind == "ask_knowledge":
            assert self.fact is not None
            return f"ask_knowledge {fact_key(self.fact)}"
        if self.kind == "ask_preference":
            return f"ask_preference {self.attribute}"
        return self.kind

    @property
    def is_mental_state_appeal(self) -> bool:
        return self.kind in MENTAL_STATE_KINDS

    def to_json(self) -> str:
        return self.text()


def disclose(fact: Fact, stated: int | None = None) -> Move:
    return Move("disclose", fact=fact, stated=stated)


def format_moves(moves: list[Move] | tuple[Move, ...]) -> str:
    return "; ".join(m.text() for m in moves)


_EFFECT = re.compile(r"^([+-]?\d+)$")


def parse_move(text: str, scenario: Scenario | None = None) -> Move:
    """One move; with a scenario, its proposals and attributes are checked too."""
    body = text.strip().strip("[]").strip()
    if not body:
        raise MoveSyntaxError("empty move")
    kind, _, arg = body.partition(" ")
    kind = kind.strip().lower()
    arg = arg.strip()
    if kind not in MOVE_KINDS:
        raise MoveSyntaxError(f"unknown move '{kind}' (moves: {', '.join(MOVE_KINDS)})")
    if kind in ("ask_choice", "appeal", "conclude"):
        if arg:
            raise MoveSyntaxError(f"'{kind}' takes no argument, got '{arg}'")
        return Move(kind)
    if not arg:
        raise MoveSyntaxError(f"'{kind}' needs an argument")
    if kind == "ask_preference":
        if scenario is not None and arg not in scenario.attribute_ids:
            raise MoveSyntaxError(f"ask_preference: unknown attribute '{arg}'")
        return Move(kind, attribute=arg)
    stated: int | None = None
    if kind == "disclose" and "=" in arg:
        arg, _, value = arg.partition("=")
        m = _EFFECT.match(value.strip())
        if not m or int(m.group(1)) not in (-1, 0, 1):
            raise MoveSyntaxError(f"disclose: the stated effect must be +1, 0 or -1, got '{value.strip()}'")
        stated = int(m.group(1))
    try:
        fact = parse_fact(arg.strip())
    except LabError as exc:
        raise MoveSyntaxError(f"{kind}: {exc}") from None
    if scenario is not None and (fact[0] not in scenario.proposal_ids or fact[1] not in scenario.attribute_ids):
        raise MoveSyntaxError(f"{kind}: unknown fact '{fact_key(fact)}'")
    return Move(kind, fact=fact, stated=stated)


def parse_moves(text: str, scenario: Scenario | None = None) -> list[Move]:
    """A `;`- or newline-separated list of moves; raises on the first bad one."""
    parts = [p for p in re.split(r"[;\n]", text) if p.strip()]
    if len(parts) == 1 and parts[0].strip().lower() in ("none", "-"):
        return []
    return [parse_move(p, scenario) for p in parts]


@dataclass
class ParsedReply:
    """A language-model persuader's reply split into its sections."""

    message: str
    moves: list[Move] = field(default_factory=list)
    reasoning: str = ""
    counterfactual: str = ""
    belief: str = ""
    ok: bool = True
    error: str = ""


_LABEL = re.compile(r"^\s*\**\s*(BELIEF|REASONING|COUNTERFACTUAL|MOVES|MESSAGE)\s*\**\s*:\s*", re.IGNORECASE)


def split_sections(text: str) -> dict[str, str]:
    """Labelled sections of a reply; text before the first label goes under ''."""
    sections: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        m = _LABEL.match(line)
        if m:
            current = m.group(1).upper()
            sections.setdefault(current, [])
            line = line[m.end():]
        sections[current].append(line)
    return {k: "\n".join(v).strip() for k, v in sections.items()}


def parse_reply(text: str, scenario: Scenario | None = None, with_message: bool = True) -> ParsedReply:
    """Parse a full persuader reply. Never raises: a bad reply comes back with `ok=False` and the reason.

    `with_message=False` reads the `moves` reply format: a MOVES line and no MESSAGE, whose message the player
    renders from the moves (`engine.game.phrasing`), as the planner does.
    """
    sections = split_sections(text)
    labelled = any(k for k in sections if k)
    message = sections.get("MESSAGE", "") if labelled else sections.get("", "")
    reply = ParsedReply(
        message=message if with_message else "",
        reasoning=sections.get("REASONING", ""),
        counterfactual=sections.get("COUNTERFACTUAL", ""),
        belief=sections.get("BELIEF", ""),
    )
    if not with_message:
        if "MOVES" not in sections:
            reply.ok, reply.error = False, "no MOVES section"
    elif labelled and "MESSAGE" not in sections:
        reply.ok, reply.error = False, "no MESSAGE section"
        reply.message = sections.get("", "") or text.strip()
    elif not reply.message.strip():
        reply.ok, reply.error = False, "empty message"
    if "MOVES" in sections:
        try:
            reply.moves = parse_moves(sections["MOVES"], scenario)
        except MoveSyntaxError as exc:
            reply.ok, reply.error = False, str(exc)
    return reply


def format_reply(
    message: str | None, moves: list[Move], reasoning: str = "", counterfactual: str = "", belief: str = ""
) -> str:
    """The inverse of `parse_reply`: what a trained persuader should write (`message=None`: no MESSAGE line)."""
    lines = []
    if belief:
        lines.append(f"BELIEF: {belief}")
    if reasoning:
        lines.append(f"REASONING: {reasoning}")
    if counterfactual:
        lines.append(f"COUNTERFACTUAL: {counterfactual}")
    lines.append(f"MOVES: {format_moves(moves) or 'none'}")
    if message is not None:
        lines.append(f"MESSAGE: {message}")
    return "\n".join(lines)
