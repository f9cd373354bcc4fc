"""Template prose for rule-based players, so that transcripts read as a conversation.

Persuader moves and rule-based target answers are rendered here and nowhere else; the choice among
templates comes from the caller's seeded RNG, so the same seed reads the same.
"""

from __future__ import annotations

import random

from engine.game.moves import Move
from engine.game.scenario import Scenario

_DISCLOSE_OPENERS = ("Did you know that", "Worth knowing:", "One thing to keep in mind:", "Just so you know,")
_ASK_PREF = (
    "How do you feel about {name}: more, or less?",
    "Does {name} matter to you?",
    "Where do you stand on {name}?",
)
_ASK_KNOW = ("Do you know how {proposal} affects {name}?", "Are you aware of what {proposal} does to {name}?")
_ASK_CHOICE = ("Which option are you leaning towards right now?", "What would you pick if you had to decide now?")
_APPEAL = ("I really think {goal} is the right call here.", "Trust me, {goal} works out best for everyone.")
_CONCLUDE = ("So, what do you decide?", "Shall we settle it? What's your choice?")


def persuader_message(scenario: Scenario, moves: list[Move], rng: random.Random) -> str:
    """A natural message that carries exactly these moves."""
    parts: list[str] = []
    disclosed = [m for m in moves if m.kind == "disclose"]
    if disclosed:
        facts = [scenario.fact_sentence(m.fact) for m in disclosed if m.fact]  # type: ignore[arg-type]
        opener = rng.choice(_DISCLOSE_OPENERS)
        body = _join(facts)
        parts.append(f"{opener} {body}{'?' if opener.startswith('Did') else '.'}")
    for m in moves:
        if m.kind == "ask_preference" and m.attribute:
            parts.append(rng.choice(_ASK_PREF).format(name=scenario.attribute(m.attribute).name))
        elif m.kind == "ask_knowledge" and m.fact:
            parts.append(
                rng.choice(_ASK_KNOW).format(
                    proposal=scenario.proposal(m.fact[0]).name, name=scenario.attribute(m.fact[1]).name
                )
            )
        elif m.kind == "ask_choice":
            parts.append(rng.choice(_ASK_CHOICE))
        elif m.kind == "appeal":
            parts.append(rng.choice(_APPEAL).format(goal=scenario.proposal(scenario.goal).name))
        elif m.kind == "conclude":
            parts.append(rng.choice(_CONCLUDE))
    return " ".join(parts) or "Let's think this through together."


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# ----- the rule-based target ------------------------------------------------------------------------
_PREF_WORDS = {
    1: ("I'd like more {name}.", "More {name} would suit me.", "{Name} matters to me; the more the better."),
    -1: ("I'd rather have less {name}.", "I want to keep {name} down.", "Less {name}, please."),
    0: ("{Name} doesn't matter much to me.", "I don't really care about {name}.", "I'm indifferent about {name}."),
}
_DECLINE = ("I'd rather not say.", "Let me keep that to myself.", "Hmm, not sure I want to get into that.")
_KNOWS_YES = ("Yes, I know {fact}.", "I'm aware: {fact}.")
_KNOWS_NO = ("No, I don't know how {proposal} affects {name}.", "I have no idea what {proposal} does to {name}.")
_ACCEPT_NEW = ("Oh, I didn't know that {fact}.", "Good to know that {fact}.", "Noted: {fact}.")
_ACCEPT_OLD = ("I knew that already.", "Yes, I was aware of that.")
_DOUBT = ("Hmm, I'm not sure I believe that.", "Are you sure? I'll need to hear that again.")
_CHOICE = ("Right now I'd go with {name}.", "At the moment I'm leaning towards {name}.", "{Name}, I think.")
_NEUTRAL = {
    "stubborn": ("I've pretty much made up my mind.", "You'll need more than that to change my mind."),
    "impulsive": ("Sure, whatever.", "Okay!", "Sounds fine, I guess."),
    "reserved": ("Okay.", "I see."),
    "skeptical": ("I'll believe it when I see it.", "Hmm."),
}
_NEUTRAL_DEFAULT = ("I see.", "Okay, go on.", "Alright.")
_FINAL = ("I'll go with {name}.", "My decision: {name}.", "{Name} it is.")


def pref_sentence(scenario: Scenario, attribute: str, value: int, rng: random.Random) -> str:
    name = scenario.attribute(attribute).name
    return rng.choice(_PREF_WORDS[value]).format(name=name, Name=name[:1].upper() + name[1:])


def decline(rng: random.Random) -> str:
    return rng.choice(_DECLINE)


def knows_sentence(scenario: Scenario, fact: tuple[str, str], known: bool, rng: random.Random) -> str:
    if known:
        return rng.choice(_KNOWS_YES).format(fact=scenario.fact_sentence(fact))
    return rng.choice(_KNOWS_NO).format(
        proposal=scenario.proposal(fact[0]).name, name=scenario.attribute(fact[1]).name
    )


def accept_sentence(scenario: Scenario, fact: tuple[str, str], new: bool, rng: random.Random) -> str:
    if not new:
        return rng.choice(_ACCEPT_OLD)
    return rng.choice(_ACCEPT_NEW).format(fact=scenario.fact_sentence(fact))


def doubt(rng: random.Random) -> str:
    return rng.choice(_DOUBT)


def choice_sentence(scenario: Scenario, pid: str, rng: random.Random, final: bool = False) -> str:
    name = scenario.proposal(pid).name
    return rng.choice(_FINAL if final else _CHOICE).format(name=name, Name=name)


def filler(personality: str, rng: random.Random) -> str:
    return rng.choice(_NEUTRAL.get(personality, _NEUTRAL_DEFAULT))

