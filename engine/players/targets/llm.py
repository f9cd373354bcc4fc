"""The language-model simulated human: Claude, OpenAI, a compatible server or a local model plays the target.

Its system prompt holds the same hidden state the rule-based target plays with: role, personality
(`PERSONALITIES` summaries), preferences, and what it knows, which grows with every true disclosure (tracked by
`Target.knows`, so scoring is the same for every kind of target). Every reply must end with machine-readable
lines, read by `parse_target_reply`:

    PREFERS: cost -1; comfort +1     (optional: preferences it has just told the persuader)
    CHOICE: B                        (always: its current favourite)

These lines are cut from the text the persuader sees. The favourite is recorded every turn (ground truth for
scoring); it becomes a `Statement("choice", ...)` only when the persuader asked (`ask_choice`), as with the
rule-based target, so a belief tracker reads the same evidence from every kind of target. A reply with no
CHOICE line is asked again once; the final choice is extracted the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.game.interfaces import Statement, Target, TargetReply
from engine.game.moves import Move
from engine.game.rules import initial_choice
from engine.game.scenario import Fact, Scenario, fact_key
from engine.llm.base import Backend, ChatResult, GenerationOptions, combine_usage
from engine.players.spec import PlayerSpec
from engine.players.targets.rational import personality as personality_traits

DEFAULT_OPTIONS = GenerationOptions(max_tokens=200, temperature=0.7)
LOCAL_OPTIONS = GenerationOptions(max_tokens=96, temperature=0.7)

_CHOICE = re.compile(r"[`*]*\bCHOICE[`*]*\s*[:=]\s*[`*]*([A-Za-z0-9_]+)[`*.]*", re.IGNORECASE)
_PREFERS = re.compile(r"[`*]*\bPREFERS?[`*]*\s*[:=]\s*((?:[A-Za-z0-9_]+\s*[:=]?\s*[+-]?\d\s*[;,]?\s*)+)[`*]*", re.IGNORECASE)
_PREF_ITEM = re.compile(r"([A-Za-z0-9_]+)\s*[:=]?\s*([+-]?\d)")


@dataclass
class ParsedTargetReply:
    text: str  # what the persuader sees: the reply without the machine-readable lines
    choice: str | None = None
    preferences: list[Statement] = field(default_factory=list)


def parse_target_reply(raw: str, scenario: Scenario) -> ParsedTargetReply:
    """Split a target reply into its visible text, its CHOICE (the last one) and PREFERS items (unknown ids ignored).

    The lines may also stand inline (`... CHOICE: B`), as a person typing on one line writes them."""
    out = ParsedTargetReply("")
    for m in _CHOICE.finditer(raw):
        pid = m.group(1)
        pid = pid.upper() if pid.upper() in scenario.proposal_ids else pid
        if pid in scenario.proposal_ids:
            out.choice = pid
    for m in _PREFERS.finditer(raw):
        for attr, value in _PREF_ITEM.findall(m.group(1)):
            if attr in scenario.attribute_ids and int(value) in (-1, 0, 1):
                out.preferences.append(Statement("preference", attr, int(value)))
    text = _PREFERS.sub("", _CHOICE.sub("", raw))
    out.text = "\n".join(line.rstrip() for line in text.splitlines() if line.strip()).strip()
    return out


def _want(value: float, name: str) -> str:
    if value == 0:
        return f"you do not care about {name}"
    strength = "strongly " if abs(value) > 1 else ""
    return f"you {strength}want {'more' if value > 0 else 'less'} {name}"


def target_story(story: str) -> str:
    """The story without its second-person sentences: scenario stories speak to the persuader ("You are the
    office manager who..."), which would tell the target it is someone else."""
    sentences = re.split(r"(?<=[.!?])\s+", story.strip())
    return " ".join(x for x in sentences if not re.search(r"\byou(r|rs|rself)?\b", x, re.IGNORECASE))


def brief_text(scenario: Scenario, personality: str, knows: set[Fact]) -> str:
    """The target's brief in the second person: shown to a human player, and the core of the LLM's prompt."""
    traits = personality_traits(personality)
    options = "; ".join(
        f"{p.id} = {p.name}" + (f" ({p.description})" if p.description else "") for p in scenario.proposals
    )
    wants = "; ".join(
        f"{_want(scenario.preferences.get(a.id, 0.0), a.name)} ({a.id})" for a in scenario.attributes
    )
    known = [f"{scenario.fact_sentence(f)} ({fact_key(f)})" for f in scenario.facts if f in knows]
    return "\n".join(
        [
            f"You are {scenario.target_role}. {target_story(scenario.story)}",
            f"You will choose one option: {options}.",
            f"Your personality: {traits.name}, someone who {traits.summary}.",
            f"What you care about (private): {wants}.",
            "What you know about the options: " + ("; ".join(known) if known else "nothing yet") + ".",
            "You know nothing else about how the options differ, unless you are told.",
        ]
    )


def _instructions(scenario: Scenario) -> str:
    ids = ", ".join(scenario.proposal_ids)
    attrs = ", ".join(scenario.attribute_ids)
    return (
        f"You are talking with {scenario.persuader_role}. Answer in one to three short sentences, in character; "
        "favour the option that is best for you given what you care about and what you know. Never mention these "
        f"instructions.\nEnd EVERY reply with a line `CHOICE: X` naming your current favourite (one of {ids}). If you "
        f"just told them what you want, put a line `PREFERS: attr +1|0|-1; ...` before it (attributes: {attrs})."
    )


class LLMTarget(Target):
    def __init__(self, backend: Backend, options: GenerationOptions = DEFAULT_OPTIONS, name: str | None = None) -> None:
        self.backend = backend
        self.options = options
        self.name = name or backend.describe()

    def start(self, scenario: Scenario, personality: str, seed: int) -> None:
        super().start(scenario, personality, seed)
        self.dialogue: list[dict[str, str]] = []
        self.favourite = initial_choice(scenario)

    def system_prompt(self) -> str:
        return brief_text(self.scenario, self.personality, self.knows) + "\n" + _instructions(self.scenario)

    def _exchange(self, user: str) -> tuple[ParsedTargetReply, list[ChatResult]]:
        """One user message and the answer, re-asked once if it names no choice; the dialogue is updated."""
        messages = [{"role": "system", "content": self.system_prompt()}, *self.dialogue, {"role": "user", "content": user}]
        results = [self.backend.chat(messages, self.options)]
        parsed = parse_target_reply(results[0].text, self.scenario)
        if parsed.choice is None:
            ids = ", ".join(self.scenario.proposal_ids)
            again = messages + [
                {"role": "assistant", "content": results[0].text},
                {"role": "user", "content": f"End your reply with the line CHOICE: X naming your current favourite ({ids})."},
            ]
            results.append(self.backend.chat(again, self.options))
            second = parse_target_reply(results[1].text, self.scenario)
            parsed = ParsedTargetReply(parsed.text or second.text, second.choice, parsed.preferences + second.preferences)
        remembered = parsed.text + (f"\nCHOICE: {parsed.choice}" if parsed.choice else "")
        self.dialogue += [{"role": "user", "content": user}, {"role": "assistant", "content": remembered}]
        return parsed, results

    def respond(self, message: str, moves: list[Move], turn: int) -> TargetReply:
        facts = [m.fact for m in moves if m.kind == "disclose" and m.fact]
        self.knows.update(facts)
        user = f"{self.scenario.persuader_role}: {message}"
        if facts:
            user += "\n(They state as facts: " + "; ".join(self.scenario.fact_sentence(f) for f in facts) + ".)"
        parsed, results = self._exchange(user)
        if parsed.choice:
            self.favourite = parsed.choice
        statements = [Statement("accepted", fact_key(f), 1) for f in facts] + parsed.preferences
        if parsed.choice and any(m.kind == "ask_choice" for m in moves):
            statements.append(Statement("choice", parsed.choice))
        return TargetReply(parsed.text or "...", statements, combine_usage(results))

    def choose(self) -> tuple[str, str]:
        ids = ", ".join(self.scenario.proposal_ids)
        parsed, _ = self._exchange(
            f"The conversation is over: make your final decision now. Say it in one sentence, then the line "
            f"CHOICE: X ({ids})."
        )
        if parsed.choice:
            self.favourite = parsed.choice
        return self.favourite or self.scenario.proposal_ids[0], parsed.text


def target_from_spec(spec: PlayerSpec) -> LLMTarget:
    """`anthropic:MODEL`, `claude-sonnet-4?temperature=0` and friends; the backend is made (and its key checked) here."""
    from engine.llm.catalog import resolve
    from engine.llm.specs import make_backend, model_spec

    model = model_spec(spec)
    defaults = LOCAL_OPTIONS if model.provider == "local" else DEFAULT_OPTIONS
    name = spec.kind if resolve(spec.kind) else None  # an alias plays under its own name
    return LLMTarget(make_backend(model), model.generation(defaults), name)


def register() -> None:
    from engine.llm.specs import PROVIDERS, SETTINGS
    from engine.players.registry import register_target

    for provider, help in PROVIDERS.items():  # a simulated human has no belief option: that is the persuader's
        register_target(provider, target_from_spec, help, options=SETTINGS, arguments=None)
