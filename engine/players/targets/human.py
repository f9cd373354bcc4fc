"""`--human-agent me`: the researcher plays the target at the keyboard.

They see the target's brief (personality, what they care about, what they know) and answer each persuader
message in free text. When the persuader asks what they want, what they know or which option they favour, the
game also needs that answer; `engine.players.targets.answers` says which answers are wanted and which are valid.
The first ask of a turn takes the words with any answers in them (the TUI's controls write them as lines, a typist
may write `PREFERS: cost -1`); an invalid answer is refused with the reason and the reply asked again, and each
wanted answer still missing is then asked on its own (`cost: 1) like 2) don't care 3) dislike`). At the end
they are asked for their final choice until they name one of the proposals.

`ask(prompt) -> str` is how text is read: `input()` in a terminal by default; the TUI passes a function that
blocks (on the game's worker thread) until the user submits, and shows controls for `request`, what this ask wants.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from engine.errors import LabError
from engine.game import phrasing
from engine.game.interfaces import HUMAN_BRIEF_HEADER, Statement, Target, TargetReply
from engine.game.moves import Move
from engine.game.rules import initial_choice
from engine.game.scenario import Scenario, fact_key, parse_fact
from engine.players.targets.answers import (
    AnswerError,
    Question,
    ReadReply,
    Request,
    Value,
    answer_help,
    choice_question,
    questions_for,
    read_reply,
)
from engine.players.targets.llm import brief_text

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
        self.request = Request()

    def start(self, scenario: Scenario, personality: str, seed: int) -> None:
        super().start(scenario, personality, seed)
        self.favourite = initial_choice(scenario)
        self._shown_brief = False
        self._rng = random.Random(seed)

    def brief(self) -> str:
        """What the player knows and wants right now (knowledge grows with every disclosure)."""
        return brief_text(self.scenario, self.personality, self.knows)

    def respond(self, message: str, moves: list[Move], turn: int) -> TargetReply:
        facts = [m.fact for m in moves if m.kind == "disclose" and m.fact]
        self.knows.update(facts)
        brief: list[str] = []
        if not self._shown_brief:
            self._shown_brief = True
            brief = [HUMAN_BRIEF_HEADER, self.brief(), answer_help(self.scenario), ""]
        lines = [f"[turn {turn}] {self.scenario.persuader_role}: {message}"]
        if facts:
            lines.append("  (stated as facts: " + "; ".join(self.scenario.fact_sentence(f) for f in facts) + ")")
        questions = questions_for(moves, self.scenario)
        if questions:
            lines.append("  (you are asked " + "; ".join(q.asked for q in questions) + ")")
        reply = self._read("\n".join(brief + lines), "\n".join(lines), questions)
        asker = self.scenario.persuader_role
        for q in reply.missing(questions):
            reply.give(q, self._answer(q, f"{asker[:1].upper()}{asker[1:]} asked {q.asked}; your reply did not say."))
        if reply.choice:
            self.favourite = reply.choice
        statements = [Statement("accepted", fact_key(f), 1) for f in facts] + reply.statements()
        if reply.choice and any(m.kind == "ask_choice" for m in moves):
            statements.append(Statement("choice", reply.choice))
        words = reply.text + ("." if reply.text and reply.text[-1].isalnum() else "")
        return TargetReply(" ".join([words] * bool(words) + self._in_words(statements)) or "...", statements)

    def _in_words(self, statements: list[Statement]) -> list[str]:
        """The answers as sentences after the player's own words: a persuader that reads only the reply (a language
        model) hears what a button said, as it hears the rule-based target's answers."""
        s, out = self.scenario, []
        for st in statements:
            if st.kind == "preference":
                out.append(phrasing.pref_sentence(s, st.subject, int(st.value or 0), self._rng))
            elif st.kind == "knows":
                out.append(phrasing.knows_sentence(s, parse_fact(st.subject), bool(st.value), self._rng))
            elif st.kind == "choice":
                out.append(phrasing.choice_sentence(s, st.subject, self._rng))
        return out

    def _read(self, first: str, again: str, questions: list[Question]) -> ReadReply:
        """The reply with its answers; one that holds an answer the game cannot take is refused with the reason and
        asked again (`again`: this turn's prompt without the brief)."""
        self.request = Request(tuple(questions))
        prompt = first
        while True:
            try:
                return read_reply(self.ask(prompt + "\nYour reply: "), self.scenario, questions)
            except AnswerError as exc:
                prompt = f"Not taken: {exc}. Your whole reply again, please.\n{again}"

    def _answer(self, question: Question, reason: str) -> Value:
        """One wanted answer, asked on its own until it is valid."""
        self.request = Request((question,), words=False)
        prompt = f"{reason}\n{question.numbered()}\nYour answer: "
        while True:
            raw = self.ask(prompt)
            try:
                given = read_reply(raw, self.scenario, [question])
                if question.key in given.answers:
                    return given.answers[question.key]
                raise question.refusal(raw)
            except AnswerError as exc:
                options = "" if question.numbered() in str(exc) else question.numbered() + "\n"
                prompt = f"Not taken: {exc}.\n{options}Your answer: "

    def choose(self) -> tuple[str, str]:
        choice = str(self._answer(choice_question(self.scenario, final=True), "The conversation is over."))
        self.favourite = choice
        return choice, f"I choose {self.scenario.proposal(choice).name}."


def register() -> None:
    from engine.players.registry import register_target

    register_target("me", lambda _: HumanTarget(), "you play the simulated human at the keyboard")
