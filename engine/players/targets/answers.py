"""What a human target must answer each turn, and which answers are valid: one rule for the TUI and the CLI.

A persuader's questions each want one answer from the person playing the target: `ask_preference cost` wants
like / don't care / dislike (+1 / 0 / -1), `ask_knowledge A.cost` wants yes / no (1 / 0), `ask_choice` and the
end of the game want one of the proposals. The answers travel as the machine-readable lines a language-model
target writes (`PREFERS: cost -1`, `CHOICE: B`, and `KNOWS: A.cost yes` for a fact), so a fast typist types them,
the TUI's answer controls write them, and a numbered prompt (`cost: 1) like 2) don't care 3) dislike`) stands for
one of them. Reading is strict, unlike the lenient reader of a model's reply: a person who names an attribute or
a proposal the scenario lacks, or a value out of range, is told why and asked again, never silently ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.errors import LabError
from engine.game.interfaces import Statement
from engine.game.moves import Move
from engine.game.scenario import Scenario, fact_key

Value = int | str
PREFERENCE_OPTIONS: tuple[tuple[Value, str], ...] = ((1, "like"), (0, "don't care"), (-1, "dislike"))
KNOWS_OPTIONS: tuple[tuple[Value, str], ...] = ((1, "yes"), (0, "no"))

_KEYWORD = re.compile(r"[`*]*\b(PREFERS?|CHOICE|KNOWS?)[`*]*\s*[:=]\s*", re.IGNORECASE)
_PREF_ITEM = re.compile(r"\s*[;,]?\s*([A-Za-z_]\w*)\s*[:=]?\s*([+-]?\d+)\b")
_KNOWS_ITEM = re.compile(r"\s*[;,]?\s*([A-Za-z0-9_]+\.[A-Za-z0-9_]+)\s*[:=]?\s*(yes|no|true|false|[+-]?\d+)\b", re.IGNORECASE)
_CHOICE_ITEM = re.compile(r"\s*([A-Za-z0-9_]+)[.,!]?")
_NEGATION = re.compile(r"\b(not|never|no|neither|nor)\b|n't", re.IGNORECASE)


class AnswerError(LabError):
    """An answer the game cannot take (an unknown attribute, fact or proposal, a value out of range)."""


@dataclass(frozen=True)
class Question:
    """One answer the game wants: `kind` preference / knows / choice about `subject` (attribute id, fact key, '')."""

    kind: str
    subject: str
    options: tuple[tuple[Value, str], ...]
    final: bool = False  # the end of the game: the answer is the target's decision

    @property
    def key(self) -> str:
        """What an answer is filed under: one answer per question, a later one replacing an earlier."""
        return f"{self.kind} {self.subject}".strip()

    @property
    def title(self) -> str:
        """The control's label and the numbered prompt's head: `cost`, `know A.cost?`, `choice now`."""
        return {"preference": self.subject, "knows": f"know {self.subject}?"}.get(
            self.kind, "final choice" if self.final else "choice now")

    @property
    def asked(self) -> str:
        """What was asked, for a sentence: `how you feel about cost`."""
        return {"preference": f"how you feel about {self.subject}", "knows": f"whether you know {self.subject}"}.get(
            self.kind, "which option you favour")

    def numbered(self) -> str:
        """The CLI's form: `cost: 1) like 2) don't care 3) dislike`."""
        return f"{self.title}: " + " ".join(f"{i}) {label}" for i, (_, label) in enumerate(self.options, 1))

    def line(self, value: Value) -> str:
        """The machine-readable line for an answer, as the TUI's controls write it."""
        if self.kind == "preference":
            return f"PREFERS: {self.subject} {int(value):+d}"
        if self.kind == "knows":
            return f"KNOWS: {self.subject} {'yes' if value else 'no'}"
        return f"CHOICE: {value}"

    def pick(self, raw: str) -> Value:
        """One answer said alone: its number, label or value (`2`, `don't care`, `0`; `B`, `Berlin`), or a sentence
        naming exactly one option's words (`I like it`, `yes I do`, `Berlin, I think`); a bare id must stand alone,
        since `A` is also a word, and a sentence with a negation (`I don't like it`) is asked again, not guessed."""
        text = raw.strip().strip(".!").strip().lower()
        said = []
        for i, (value, label) in enumerate(self.options, 1):
            words = label.split(" = ")[-1].lower()
            if text in {str(i), label.lower(), str(value).lower(), words} or (
                    isinstance(value, int) and text == f"{value:+d}"):
                return value
            named = re.compile(rf"(?<![\w']){re.escape(words)}(?![\w'])")
            if named.search(text) and not _NEGATION.search(named.sub("", text)):
                said.append(value)
        if len(said) == 1:
            return said[0]
        raise self.refusal(raw)

    def refusal(self, raw: str) -> AnswerError:
        return AnswerError(f"'{raw.strip()}' is not an answer to {self.numbered()}")

    def statement(self, value: Value) -> Statement:
        """What the persuader hears: `preference cost -1`, `knows A.cost 1`, `choice B`."""
        return Statement("choice", str(value)) if self.kind == "choice" else Statement(self.kind, self.subject, value)


@dataclass(frozen=True)
class Request:
    """What one ask of a human target wants: answers to `questions`, and words too unless `words` is False (a
    re-ask of a missing answer, the final choice), which the TUI then takes at one click."""

    questions: tuple[Question, ...] = ()
    words: bool = True


def answer_help(scenario: Scenario) -> str:
    """How a person gives the answers, with this scenario's own ids (an example naming an id it lacks is refused)."""
    proposal, attr = scenario.proposal_ids[-1], scenario.attribute_ids[0]
    return (
        "Answer in your own words, and give what you are asked (like / don't care / dislike, yes / no, an option); "
        f"one left out is asked again. Typed: `PREFERS: {attr} -1`, `KNOWS: {scenario.proposal_ids[0]}.{attr} yes`, "
        f"`CHOICE: {proposal}`."
    )


def preference_question(attribute: str) -> Question:
    return Question("preference", attribute, PREFERENCE_OPTIONS)


def knows_question(fact: str) -> Question:
    return Question("knows", fact, KNOWS_OPTIONS)


def choice_question(scenario: Scenario, final: bool = False) -> Question:
    options = tuple((p.id, f"{p.id} = {p.name}") for p in scenario.proposals)
    return Question("choice", "", options, final)


def questions_for(moves: list[Move], scenario: Scenario) -> list[Question]:
    """The answers a persuader's moves ask for, in the order they were asked, each once."""
    out: dict[str, Question] = {}
    for m in moves:
        if m.kind == "ask_preference" and m.attribute:
            q = preference_question(m.attribute)
        elif m.kind == "ask_knowledge" and m.fact:
            q = knows_question(fact_key(m.fact))
        elif m.kind == "ask_choice":
            q = choice_question(scenario)
        else:
            continue
        out.setdefault(q.key, q)
    return list(out.values())


@dataclass
class ReadReply:
    """A human target's reply: the words the persuader sees, and the answers given, by `Question.key`."""

    text: str
    answers: dict[str, Value] = field(default_factory=dict)
    questions: dict[str, Question] = field(default_factory=dict)  # the question behind each answer

    def give(self, question: Question, value: Value) -> None:
        self.answers[question.key] = value
        self.questions[question.key] = question

    def missing(self, wanted: list[Question]) -> list[Question]:
        return [q for q in wanted if q.key not in self.answers]

    def statements(self) -> list[Statement]:
        """What the persuader may update on: every preference and knowledge answer; the choice is added by the
        target only when it was asked (as every kind of target does)."""
        return [self.questions[k].statement(v) for k, v in self.answers.items() if self.questions[k].kind != "choice"]

    @property
    def choice(self) -> str | None:
        value = self.answers.get("choice")
        return None if value is None else str(value)


def read_reply(raw: str, scenario: Scenario, wanted: list[Question] | None = None) -> ReadReply:
    """The reply split into words and answers; raises AnswerError naming every answer it cannot take.

    Answer lines may stand anywhere, inline or on their own lines. With exactly one question wanted, a reply that
    is only that question's number or label (`2`, `dislike`, `B`) answers it."""
    wanted = wanted or []
    errors: list[str] = []
    words: list[str] = []
    out = ReadReply(raw.strip())
    if len(wanted) == 1:
        try:
            out.give(wanted[0], wanted[0].pick(raw))
            return out
        except AnswerError:
            pass  # not a bare answer: read it as a reply
    for line in raw.splitlines():
        marks = list(_KEYWORD.finditer(line))
        parts = [line[: marks[0].start()] if marks else line]
        for i, m in enumerate(marks):
            body = line[m.end() : marks[i + 1].start() if i + 1 < len(marks) else len(line)]
            parts.append(_read_line(m.group(1).upper(), body, scenario, out, errors))
        words.append(" ".join(" ".join(parts).split()))
    if errors:
        raise AnswerError("; ".join(errors))
    out.text = "\n".join(w for w in words if w)
    return out


def _read_line(keyword: str, body: str, scenario: Scenario, out: ReadReply, errors: list[str]) -> str:
    """Read one answer line's items into `out` (their errors into `errors`); returns the words after them."""
    name = keyword.rstrip("S") + "S" if keyword != "CHOICE" else "CHOICE"
    item = {"PREFERS": _PREF_ITEM, "KNOWS": _KNOWS_ITEM, "CHOICE": _CHOICE_ITEM}[name]
    pos, count = 0, 0
    while (m := item.match(body, pos)) and (count == 0 or name != "CHOICE"):
        pos, count = m.end(), count + 1
        if name == "CHOICE":
            pid = _proposal(m.group(1), scenario)
            if pid in scenario.proposal_ids:
                out.give(choice_question(scenario), pid)
            else:
                errors.append(f"there is no proposal '{m.group(1)}' (proposals: {', '.join(scenario.proposal_ids)})")
        elif name == "PREFERS":
            attr, value = m.group(1), int(m.group(2))
            if attr not in scenario.attribute_ids:
                errors.append(f"there is no attribute '{attr}' (attributes: {', '.join(scenario.attribute_ids)})")
            elif value not in (-1, 0, 1):
                errors.append(f"'{attr} {m.group(2)}': a preference is +1 (like), 0 (don't care) or -1 (dislike)")
            else:
                out.give(preference_question(attr), value)
        else:
            fact, said = m.group(1), m.group(2).lower()
            known = {"yes": 1, "true": 1, "1": 1, "+1": 1, "no": 0, "false": 0, "0": 0}.get(said)
            proposal, _, attr = fact.partition(".")
            proposal = _proposal(proposal, scenario)
            if proposal not in scenario.proposal_ids or attr not in scenario.attribute_ids:
                errors.append(f"there is no fact '{fact}' (write proposal.attribute, e.g. "
                              f"{scenario.proposal_ids[0]}.{scenario.attribute_ids[0]})")
            elif known is None:
                errors.append(f"'{fact} {said}': say yes or no")
            else:
                out.give(knows_question(f"{proposal}.{attr}"), known)
    if count == 0:
        errors.append(f"{name}: what follows is not an answer ({_EXAMPLES[name]})")
    return body[pos:].lstrip(" ;,.")


def _proposal(written: str, scenario: Scenario) -> str:
    """A proposal id as the scenario spells it (`b` -> `B`), or as written when it has none such."""
    return written.upper() if written.upper() in scenario.proposal_ids else written


_EXAMPLES = {"PREFERS": "e.g. PREFERS: cost -1; comfort +1", "KNOWS": "e.g. KNOWS: A.cost yes",
             "CHOICE": "e.g. CHOICE: B"}
