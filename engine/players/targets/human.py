"""`--human-agent me`: the researcher plays the target at the keyboard.

They see the target's brief (personality, what they care about, what they know) and answer each persuader
message in free text. A line `CHOICE: B` states their current favourite and `PREFERS: cost -1` what they want,
the same machine-readable lines a language-model target writes, so the persuader gets the same statements.
At the end they are asked for their final choice until they name one of the proposals.

`ask(prompt) -> str` is how text is read: `input()` in a terminal by default; the TUI passes a function that
blocks (on the game's worker thread) until the user submits.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.errors import LabError
from engine.game.interfaces import HUMAN_BRIEF_HEADER, Statement, Target, TargetReply
from engine.game.moves import Move
from engine.game.rules import initial_choice
from engine.game.scenario import Scenario, fact_key
from engine.players.targets.llm import brief_text, parse_target_reply

Ask = Callable[[str], str]


def terminal_ask(prompt: str) -> str:
    """Read one line from the terminal; end of input stops the game instead of looping."""
    try:
        return input(prompt)
    except EOFError:
        raise LabError("no more input on the terminal: the game stops here") from None


class HumanTarget(Target):
    name = "me"

    def __init__(self, ask: Ask | None = None) -> None:
        self.ask = ask or terminal_ask

    def start(self, scenario: Scenario, personality: str, seed: int) -> None:
        super().start(scenario, personality, seed)
        self.favourite = initial_choice(scenario)
        self._shown_brief = False

    def brief(self) -> str:
        """What the player knows and wants right now (knowledge grows with every disclosure)."""
        return brief_text(self.scenario, self.personality, self.knows)

    def respond(self, message: str, moves: list[Move], turn: int) -> TargetReply:
        facts = [m.fact for m in moves if m.kind == "disclose" and m.fact]
        self.knows.update(facts)
        lines = []
        if not self._shown_brief:
            self._shown_brief = True
            lines += [HUMAN_BRIEF_HEADER, self.brief(), HELP, ""]
        lines.append(f"[turn {turn}] {self.scenario.persuader_role}: {message}")
        if facts:
            lines.append("  (stated as facts: " + "; ".join(self.scenario.fact_sentence(f) for f in facts) + ")")
        questions = [m.text() for m in moves if m.kind not in ("disclose", "appeal")]
        if questions:
            lines.append("  (moves: " + "; ".join(questions) + ")")
        lines.append("Your reply: ")
        raw = self.ask("\n".join(lines))
        parsed = parse_target_reply(raw, self.scenario)
        if parsed.choice:
            self.favourite = parsed.choice
        statements = [Statement("accepted", fact_key(f), 1) for f in facts] + parsed.preferences
        if parsed.choice and any(m.kind == "ask_choice" for m in moves):
            statements.append(Statement("choice", parsed.choice))
        return TargetReply(parsed.text or "...", statements)

    def choose(self) -> tuple[str, str]:
        ids = ", ".join(self.scenario.proposal_ids)
        prompt = f"The conversation is over. Your final choice ({ids}): "
        while True:
            raw = self.ask(prompt).strip()
            pick = raw.split()[0].strip(".,!").upper() if raw else ""
            parsed = parse_target_reply(raw, self.scenario)
            choice = parsed.choice or (pick if pick in self.scenario.proposal_ids else None)
            if choice:
                self.favourite = choice
                return choice, f"I choose {self.scenario.proposal(choice).name}."
            prompt = f"'{raw}' is not one of {ids}. Your final choice: "


HELP = (
    "Answer in your own words. Optional lines: `CHOICE: B` (your favourite now), `PREFERS: cost -1; comfort +1` "
    "(what you want: +1 more, -1 less, 0 don't care)."
)


def register() -> None:
    from engine.players.registry import register_target

    register_target("me", lambda _: HumanTarget(), "you play the simulated human at the keyboard")
