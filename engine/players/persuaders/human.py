"""`--persuader me`: the researcher plays the persuader at the keyboard.

Each turn they see the target's last reply and type a message. Moves go in square brackets at the start,
in the documented move syntax (`engine.game.moves`), separated by ';':

    [disclose B.cost; ask_preference comfort] Berlin is cheaper. How much does comfort matter to you?
    [conclude] Time to decide!

A message with no brackets is an `appeal` in free text. A bad move is explained and the turn is asked again.
`ask(prompt) -> str` reads the text: `input()` by default, a blocking function from the TUI.
"""

from __future__ import annotations

from engine.game.interfaces import HUMAN_BRIEF_HEADER, Persuader, PersuaderTurn, PersuaderView
from engine.game.moves import Move, MoveSyntaxError, disclose, format_moves, parse_moves
from engine.game.scenario import Scenario, fact_key
from engine.players.prompts import MOVE_HELP
from engine.players.targets.human import Ask, terminal_ask


def split_moves_prefix(text: str) -> tuple[str, str]:
    """`[moves] message` -> (the text inside the brackets, the message); shared by the parser and the TUI's move
    builder, which adds moves to the bracket a typist may have started. Raises MoveSyntaxError on an unclosed '['."""
    text = text.strip()
    if not text.startswith("["):
        return "", text
    end = text.find("]")
    if end < 0:
        raise MoveSyntaxError("a '[' with no closing ']': write [move; move] message")
    return text[1:end].strip(), text[end + 1 :].strip()


def add_move(text: str, move: Move, scenario: Scenario) -> str:
    """`text` with `move` added to its leading `[moves]` (made if absent); the message after it is kept.
    Raises MoveSyntaxError when the bracket already typed does not parse: it is the player's to fix first."""
    moves_text, message = split_moves_prefix(text)
    moves = parse_moves(moves_text, scenario) if moves_text else []
    return f"[{format_moves([*moves, move])}] {message}"


def has_moves(text: str) -> bool:
    """Whether a persuader's message carries any move (a message without one is a plain appeal)."""
    return bool(split_moves_prefix(text)[0])


def split_human_message(text: str, scenario: Scenario) -> PersuaderTurn:
    """`[moves] message` -> a turn; raises MoveSyntaxError on a bad move."""
    moves_text, text = split_moves_prefix(text)
    moves = parse_moves(moves_text, scenario) if moves_text else []
    return PersuaderTurn(message=text or "(no words)", moves=moves, raw="")


def example_moves(scenario: Scenario) -> str:
    """A move line in this scenario's own ids (a true disclosure about the goal, a preference question), for the
    help: an example naming an attribute the scenario lacks would be refused if copied."""
    fact = next((f for f in scenario.facts if f[0] == scenario.goal), scenario.facts[0])
    ask = Move("ask_preference", attribute=scenario.attribute_ids[-1])
    return format_moves([disclose(fact, scenario.effect(fact)), ask])


def persuader_brief(view: PersuaderView) -> str:
    """What the persuader knows: the story, the goal, every fact, and (revealed condition) the target's mind."""
    s = view.scenario
    goal = s.proposal(s.goal)
    lines = [
        f"You are {s.persuader_role}. {s.story.strip()}",
        f"Your goal: get {s.target_role} to choose {goal.id} ({goal.name}). You may not state a false effect.",
        "Options: " + "; ".join(f"{p.id} = {p.name}" for p in s.proposals) + ".",
        "Facts: " + "; ".join(f"{fact_key(f)}={s.effect(f):+d} ({s.fact_sentence(f)})" for f in s.facts) + ".",
    ]
    if view.revealed is not None:
        prefs = ", ".join(f"{a} {v:+g}" for a, v in view.revealed.preferences.items())
        knows = ", ".join(sorted(fact_key(f) for f in view.revealed.target_knows)) or "nothing"
        lines.append(f"The target's preferences: {prefs}. The target knows: {knows}.")
    lines.append(f"Type [moves] then your message, e.g. [{example_moves(s)}] ... {MOVE_HELP} "
                 "Without brackets it is a plain appeal.")
    return "\n".join(lines)


class HumanPersuader(Persuader):
    name = "me"

    def __init__(self, ask: Ask | None = None) -> None:
        self.ask = ask or terminal_ask

    def act(self, view: PersuaderView) -> PersuaderTurn:
        lines = []
        if view.turn == 1:
            lines += [HUMAN_BRIEF_HEADER, persuader_brief(view), ""]
        elif view.history:
            last = view.history[-1]
            if last.refused:
                lines.append("Refused (false): " + "; ".join(r.text() for r in last.refused))
            lines.append(f"{view.scenario.target_role}: {last.reply}")
        lines.append(f"[turn {view.turn} of {view.scenario.max_turns}] Your message: ")
        prompt = "\n".join(lines)
        while True:
            try:
                return split_human_message(self.ask(prompt), view.scenario)
            except MoveSyntaxError as exc:
                prompt = f"{exc}. Try again: "


def register() -> None:
    from engine.players.registry import register_persuader

    register_persuader("me", lambda _: HumanPersuader(), "you play the persuader at the keyboard")
