"""The one prompt builder for the persuader's side.

Data prep writes training examples with it and every language-model persuader builds its requests with it, so
a model is trained on exactly what it later sees. Prompts are kept compact: the embedded model trains on the
CPU at a few hundred tokens a second.

    system    = the scenario as the persuader sees it + the reply format: the same on every turn of a game
    user      = the dialogue so far, then the current belief state and the turn number
    assistant = `moves.format_reply(...)`: REASONING, COUNTERFACTUAL, MOVES, MESSAGE (reply format `full`),
                or MOVES and a short MESSAGE (`compact`), or MOVES alone (`moves`: the player renders the message);
                `prepare --reply-format` and the spec's `?reply=` agree

Everything that changes from turn to turn comes last, so each turn's prompt starts with the whole of the last
turn's prompt up to its belief line: a local model reads only the new exchange and the belief again
(`engine.llm.prefix_cache`). `PROMPT_VERSION` names this layout; `finetune` records it with the adapter, and a model
trained on another layout gets a warning at play time.

In the *hidden* condition nothing here can leak the target's preferences or knowledge: the builder is handed
the persuader's side of the scenario (`game.persuader_side`), and the hidden state only through `revealed`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.game.interfaces import Exchange, HiddenState, PersuaderView
from engine.game.moves import format_reply
from engine.game.scenario import Scenario, fact_key
from engine.players.reply_schema import reply_sections, writes_message

if TYPE_CHECKING:
    from engine.game.record import Turn

PROMPT_VERSION = 2  # 1: belief and turn number in the system prompt (adapters made before 2026-11-29)
MOVE_HELP = (
    "MOVES: any of disclose P.attr=+1|0|-1 (must be true), ask_preference attr, ask_knowledge P.attr, "
    "ask_choice, appeal, conclude (ends the game), separated by ';'."
)


@dataclass(frozen=True)
class HistoryItem:
    moves: tuple[str, ...]
    message: str
    reply: str


def history_from_view(history: Iterable[Exchange]) -> list[HistoryItem]:
    return [HistoryItem(tuple(m.text() for m in ex.moves), ex.message, ex.reply) for ex in history]


def history_from_turns(turns: Iterable[Turn]) -> list[HistoryItem]:
    """From recorded turns (`engine.game.record`); refused lies are dropped, as the loop drops them at play time."""
    out = []
    for t in turns:
        refused = {r.move for r in t.refused}
        out.append(HistoryItem(tuple(m.text() for m in t.moves if m not in refused), t.message, t.target_reply))
    return out


def belief_text(belief: Mapping[str, Any] | None) -> str:
    """`cost like .20 neutral .30 dislike .50; ...; predicted choice B (P(goal) .41)`."""
    if not belief:
        return ""
    parts = []
    for attr, dist in (belief.get("preferences") or {}).items():
        parts.append(
            f"{attr} like {dist.get('like', 0):.2f} neutral {dist.get('neutral', 0):.2f} dislike {dist.get('dislike', 0):.2f}"
        )
    tail = ""
    if belief.get("predicted_choice"):
        tail = f"predicted choice {belief['predicted_choice']}"
        if belief.get("p_goal") is not None:
            tail += f" (P(goal) {belief['p_goal']:.2f})"
        parts.append(tail)
    return "; ".join(parts)


def counterfactual_text(cf: Mapping[str, Any] | None) -> str:
    """`disclose B.cost=+1 -> P(goal) 0.41 -> 0.78, predicted choice A; alternatives: ask_choice 0.45`."""
    if not cf:
        return ""
    text = f"{cf.get('move', '')} -> P(goal) {cf.get('p_goal_before', 0):.2f} -> {cf.get('p_goal_after', 0):.2f}"
    if cf.get("predicted_choice"):
        text += f", predicted choice {cf['predicted_choice']}"
    alts = cf.get("alternatives") or []
    if alts:
        text += "; alternatives: " + ", ".join(f"{a['move']} {a['p_goal']:.2f}" for a in alts[:3])
    return text


def system_prompt(
    scenario: Scenario,
    revealed: HiddenState | None = None,
    self_belief: bool = False,
    reply: str = "full",
) -> str:
    """What stays the same on every turn of a game (the turn's belief and number go last: `turn_prompt`)."""
    goal = scenario.proposal(scenario.goal)
    lines = [
        f"You are {scenario.persuader_role}. {scenario.story.strip()}",
        f"Get {scenario.target_role} to choose {goal.id} ({goal.name}) within {scenario.max_turns} turns. "
        "Never state a false effect.",
        "Proposals: " + "; ".join(f"{p.id}={p.name}" for p in scenario.proposals) + ".",
        "Facts: "
        + " | ".join(
            f"{p.id}: " + ", ".join(f"{a.id} {scenario.effects[p.id][a.id]:+d}" for a in scenario.attributes)
            for p in scenario.proposals
        ),
    ]
    if revealed is None and scenario.target_knows_count is not None:
        lines.append(f"The target knows {scenario.target_knows_count} of the {len(scenario.facts)} facts at the "
                     "start; which ones is hidden.")
    if revealed is None and scenario.full_knowledge_best == "other":
        lines.append("Told every fact, the target would choose neither your proposal nor its first choice.")
    if revealed is not None:
        prefs = ", ".join(f"{a} {v:+g}" for a, v in revealed.preferences.items())
        knows = ", ".join(sorted(fact_key(f) for f in revealed.target_knows)) or "nothing"
        lines.append(f"Target's preferences: {prefs}. Target knows: {knows}.")
    sections = ", ".join(reply_sections(reply, self_belief))
    short = " (MESSAGE: one or two sentences)" if reply == "compact" else ""
    lines.append(f"Reply with {sections}{short}. {MOVE_HELP}")
    if self_belief:
        lines.append("BELIEF: for each attribute the target's likely preference, e.g. cost -1 (0.8); then predicted choice X.")
    return "\n".join(lines)


def prompt_layout(rows: Iterable[Mapping[str, Any]]) -> int:
    """The layout (`PROMPT_VERSION`) training rows were written with, read from the first row's system prompt:
    layout 1 carried `Turn k of N.` there. Rows without a system prompt are taken as the current layout."""
    for row in rows:
        messages = row.get("messages") or row.get("prompt") or []
        system = next((m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "system"), None)
        if system is not None:
            return 1 if re.search(r"^Turn \d+ of \d+\.", system, re.MULTILINE) else PROMPT_VERSION
    return PROMPT_VERSION


def dialogue_prompt(history: list[HistoryItem]) -> str:
    if not history:
        return "The conversation starts."
    lines = []
    for i, item in enumerate(history, 1):
        moves = f" [{'; '.join(item.moves)}]" if item.moves else ""
        lines.append(f"{i}. You{moves}: {item.message}")
        lines.append(f"{i}. Them: {item.reply}")
    return "\n".join(lines)


def turn_prompt(history: list[HistoryItem], turn: int, belief: Mapping[str, Any] | None = None,
                self_belief: bool = False) -> str:
    """The user message: the dialogue, then what changes every turn (the tracker's belief, the turn number)."""
    lines = [dialogue_prompt(history)]
    text = belief_text(belief)
    if text and not self_belief:
        lines.append(f"Belief about the target: {text}.")
    lines.append(f"Turn {turn}: write your reply.")
    return "\n".join(lines)


def persuader_messages(
    scenario: Scenario,
    turn: int,
    history: list[HistoryItem],
    belief: Mapping[str, Any] | None = None,
    revealed: HiddenState | None = None,
    self_belief: bool = False,
    reply: str = "full",
) -> list[dict[str, str]]:
    """The system and user messages a persuader model sees before writing turn `turn`."""
    return [
        {"role": "system", "content": system_prompt(scenario, revealed, self_belief, reply)},
        {"role": "user", "content": turn_prompt(history, turn, belief, self_belief)},
    ]


def messages_for_view(
    view: PersuaderView, belief: Mapping[str, Any] | None = None, self_belief: bool = False, reply: str = "full"
) -> list[dict[str, str]]:
    """What an LM persuader sends at play time."""
    history = history_from_view(view.history)
    return persuader_messages(view.scenario, view.turn, history, belief, view.revealed, self_belief, reply)


def assistant_text(turn: Turn, self_belief: bool = False, reply: str = "full") -> str:
    """The target text for one recorded turn: what a trained persuader should write (`compact`: no reasoning;
    `moves`: no message either)."""
    cf, belief = turn.counterfactual, turn.belief
    full = "REASONING" in reply_sections(reply)
    return format_reply(
        turn.message if writes_message(reply) else None,
        list(turn.moves),
        reasoning=turn.reasoning if full else "",
        counterfactual=counterfactual_text(cf.model_dump(exclude_none=True) if cf and full else None),
        belief=belief_text(belief.model_dump(exclude_none=True) if belief else None) if self_belief else "",
    )
