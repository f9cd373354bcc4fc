"""The rule-based rational target: the reference simulated human.

Fast, seeded and deterministic for a seed. Personalities are parameter sets, published in `PERSONALITIES`,
so the planner can model each one with the same numbers the target uses.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from engine.errors import LabError
from engine.game import mindgames, phrasing
from engine.game.interfaces import Statement, Target, TargetReply
from engine.game.moves import Move
from engine.game.rules import choose, initial_choice, values
from engine.game.scenario import Scenario, fact_key


@dataclass(frozen=True)
class Personality:
    name: str
    summary: str
    answer_prob: float = 1.0  # chance of answering a direct question about itself
    volunteer: bool = False  # states one not-yet-stated preference unprompted each turn
    first_choice_bonus: float = 0.0  # added to the value of its initial choice
    accept_prob: float = 1.0  # chance of believing a first-time disclosure (a repeat is always believed)
    temperature: float = 0.0  # >0: softmax choice over values instead of the argmax


PERSONALITIES: dict[str, Personality] = {
    p.name: p
    for p in (
        Personality("cooperative", "answers every question truthfully and weighs every fact"),
        Personality("open", "volunteers what it cares about without being asked", volunteer=True),
        Personality("reserved", "answers questions about itself only some of the time", answer_prob=0.6),
        Personality("stubborn", "sticks with its first choice unless another is clearly better", first_choice_bonus=1.0),
        Personality("skeptical", "doubts a new claim half the time until it is repeated", accept_prob=0.5),
        Personality("impulsive", "chooses noisily, sometimes not the best option", temperature=0.7),
    )
}


def personality(name: str) -> Personality:
    try:
        return PERSONALITIES[name]
    except KeyError:
        raise LabError(f"unknown personality '{name}' (known: {', '.join(PERSONALITIES)}, or 'mix')") from None


def resolve_personality(name: str, rng: random.Random) -> str:
    """'mix' draws one personality per game; any other name is checked."""
    if name == "mix":
        return rng.choice(list(PERSONALITIES))
    return personality(name).name


class RationalTarget(Target):
    name = "rational"

    def start(self, scenario: Scenario, personality_name: str, seed: int) -> None:
        super().start(scenario, personality_name, seed)
        self.traits = personality(personality_name)
        self.rng = random.Random(f"{seed}:target")
        # the final choice draws from its own stream, so two persuaders that leave the target in the same state get
        # the same outcome however many words it took (the pairing McNemar's test assumes; a noisy chooser otherwise
        # draws at a point of `rng` that depends on the conversation)
        self.choice_rng = random.Random(f"{seed}:choice")
        self.first_choice = initial_choice(scenario)
        self.favourite = self.first_choice
        self.stated: set[str] = set()
        self.doubted: set[tuple[str, str]] = set()

    def _base_values(self) -> dict[str, float]:
        return values(self.scenario, self.scenario.preferences, self.knows)

    def current_values(self) -> dict[str, float]:
        vals = self._base_values()
        vals[self.first_choice] += self.traits.first_choice_bonus
        return vals

    def _pick(self, rng: random.Random | None = None) -> str:
        vals = self.current_values()
        if self.traits.temperature > 0:
            top = max(vals.values())
            ids = sorted(vals)  # by id, not listing order: the same draw picks the same proposal however listed
            return (rng or self.rng).choices(ids, [math.exp((vals[p] - top) / self.traits.temperature) for p in ids])[0]
        return choose(vals, self.favourite)

    def respond(self, message: str, moves: list[Move], turn: int) -> TargetReply:
        s, rng, traits = self.scenario, self.rng, self.traits
        parts: list[str] = []
        said: list[Statement] = []
        for move in moves:
            if move.kind == "disclose" and move.fact:
                fact, key = move.fact, fact_key(move.fact)
                if fact in self.knows:
                    parts.append(phrasing.accept_sentence(s, fact, False, rng))
                    said.append(Statement("accepted", key, 1))
                elif fact in self.doubted or traits.accept_prob >= 1.0 or rng.random() < traits.accept_prob:
                    self.knows.add(fact)
                    parts.append(phrasing.accept_sentence(s, fact, True, rng))
                    said.append(Statement("accepted", key, 1))
                else:
                    self.doubted.add(fact)
                    parts.append(phrasing.doubt(rng))
                    said.append(Statement("accepted", key, 0))
        for move in moves:
            if move.kind in ("ask_preference", "ask_knowledge", "ask_choice") and (
                traits.answer_prob < 1.0 and rng.random() >= traits.answer_prob
            ):
                parts.append(phrasing.decline(rng))
                said.append(Statement("declined", move.text().split(" ", 1)[-1]))
                continue
            if move.kind == "ask_preference" and move.attribute:
                value = _sign(s.preferences.get(move.attribute, 0.0))
                parts.append(phrasing.pref_sentence(s, move.attribute, value, rng))
                said.append(Statement("preference", move.attribute, value))
                self.stated.add(move.attribute)
            elif move.kind == "ask_knowledge" and move.fact and self.rules == "mindgames":
                text, statements = mindgames.knowledge_answer(s, self.knows, move.fact[0])
                parts.append(text)
                said.extend(statements)
            elif move.kind == "ask_knowledge" and move.fact:
                known = move.fact in self.knows
                parts.append(phrasing.knows_sentence(s, move.fact, known, rng))
                said.append(Statement("knows", fact_key(move.fact), int(known)))
        if traits.volunteer:
            unstated = [a for a in s.attribute_ids if a not in self.stated]
            if unstated:
                attr = max(unstated, key=lambda a: abs(s.preferences.get(a, 0.0)))
                value = _sign(s.preferences.get(attr, 0.0))
                parts.append(phrasing.pref_sentence(s, attr, value, rng))
                said.append(Statement("preference", attr, value))
                self.stated.add(attr)
        self.favourite = self._pick()
        if any(m.kind == "ask_choice" for m in moves) and not any(st.kind == "declined" and st.subject == "ask_choice" for st in said):
            if self.rules == "mindgames":
                text, statement = mindgames.ranking_answer(s, self.current_values(), self.favourite)
                parts.append(text)
                said.append(statement)
            else:
                parts.append(phrasing.choice_sentence(s, self.favourite, rng))
                said.append(Statement("choice", self.favourite))
        if not parts:
            parts.append(phrasing.filler(self.personality, rng))
        return TargetReply(" ".join(parts), said)

    def choose(self) -> tuple[str, str]:
        self.favourite = self._pick(self.choice_rng)
        return self.favourite, phrasing.choice_sentence(self.scenario, self.favourite, self.rng, final=True)

    def state(self) -> dict:
        out = super().state()
        out["values"] = self.current_values()
        return out


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def register() -> None:
    from engine.players.registry import register_target

    register_target("rational", lambda _: RationalTarget(), "rule-based rational target (pick --personality)")
