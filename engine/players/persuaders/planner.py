"""The planning theory-of-mind persuader: the lab's teacher and strongest baseline.

Each turn it (1) folds the target's last reply into its `BeliefTracker`, (2) values every candidate message by the
predicted chance that the game ends on the goal, simulating the target under the belief, and (3) sends the best.
Candidates: disclosure plans (the facts that help the goal or hurt its rivals under some likely preference
vector, sent a few a message), questions (valued by a one-step look-ahead: the expected best plan after each
possible answer, so a question is asked only when its answer could change the plan), and `conclude`. Preference
questions and disclosures that do not conclude also ask for the target's current choice: the answer costs no turn
and tells what the target already knows. The chosen move, its prediction (the choice right after it, a doubter's
doubts included) and the best alternatives are logged in the shared counterfactual schema, and a reasoning
paragraph is written from those numbers.

Spec (`--persuader`, grammar in `engine.players.spec`): `planner`, the preset `planner:weak` (= noise 0.35, never asks),
and options `planner?noise=P&asks=N&per=N&salt=N`: `noise` is the chance per turn of sending a random non-best
candidate instead (failures for training data), `asks` the most questions a message (0 never asks), `per` the most
disclosures a message, `salt` varies the noise draws. The older `planner:noise=0.3,asks=1` still reads the same.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from engine.errors import LabError
from engine.game import phrasing
from engine.game.interfaces import Persuader, PersuaderTurn, PersuaderView
from engine.game.moves import Move, disclose, format_moves
from engine.game.scenario import Fact
from engine.players.belief import BeliefTracker
from engine.players.spec import PlayerSpec

FOCUS = 1e-3  # planning ignores states under this share of the likeliest one (at most a few % of the mass)
MIN_INFO_VALUE = 0.002  # questions are considered only when perfect information could add more P(goal) than this
SPEC_HELP = "Bayesian planner with counterfactuals; planner?noise=0.3 | planner:weak | planner?asks=1&per=2"
OPTIONS = ("noise", "asks", "per", "salt")
PRESETS = {"weak": {"noise": "0.35", "asks": "0"}}


@dataclass(frozen=True)
class PlannerConfig:
    noise: float = 0.0
    asks: int = 2
    per_message: int = 3
    turn_cost: float = 0.004  # how much predicted success one more turn is worth giving up
    salt: int = 0


def config(spec: PlayerSpec) -> PlannerConfig:
    """A checked spec's preset and options (`planner:weak?salt=2`) as a config; a bad value names its option."""
    cfg = PlannerConfig()
    for key, value in {**PRESETS.get(spec.argument, {}), **spec.options}.items():
        try:
            if key == "noise":
                cfg = replace(cfg, noise=float(value))
                if not 0.0 <= cfg.noise <= 1.0:
                    raise ValueError
            else:
                number = int(value)
                if number < (1 if key == "per" else 0):
                    raise ValueError
                cfg = replace(cfg, **{{"asks": "asks", "per": "per_message", "salt": "salt"}[key]: number})
        except ValueError:
            raise LabError(f"planner: bad value in '{key}={value}' (noise 0..1, asks/salt >= 0, per >= 1)") from None
    return cfg


def parse_spec(settings: str) -> PlannerConfig:
    """The config of `planner:SETTINGS` (`noise=0.3,asks=1`, `weak`, `asks=0`): what scripts and tests hold."""
    from engine.players.registry import canonical

    return config(canonical(f"planner:{settings}"))


@dataclass
class Option:
    """One candidate message and its predicted P(goal) if sent (and the plan carried on)."""

    moves: list[Move]
    value: float
    kind: str  # conclude | disclose | ask | detour
    extra_turns: int = 1
    facts: list[Fact] = field(default_factory=list)
    note: str = ""

    @property
    def text(self) -> str:
        return format_moves(self.moves)

    @property
    def score(self) -> float:
        return self.value


class Planner(Persuader):
    """Plans over a Bayesian belief about the target (see the module docstring)."""

    name = "planner"

    def __init__(self, config: PlannerConfig | None = None) -> None:
        self.config = config or PlannerConfig()

    def start(self, view: PersuaderView, seed: int) -> None:
        self.rng = random.Random(f"{seed}:{self.config.salt}:persuader")
        self.tracker = BeliefTracker(view.scenario, view.condition, view.revealed)
        self.seen = 0

    def catch_up(self, view: PersuaderView) -> None:
        for ex in view.history[self.seen:]:
            self.tracker.observe(ex)
        self.seen = len(view.history)

    # ----- planning -----------------------------------------------------------------------------------------
    def act(self, view: PersuaderView) -> PersuaderTurn:
        self.catch_up(view)
        belief = self.tracker.to_dict()
        # plan over the states that still matter; the full belief keeps the long tail for robustness
        self.focus = self.tracker.focused(FOCUS)
        tr, s = self.focus, view.scenario
        options = self.options(view)
        # best score first; near-ties go to concluding, then to the plan ("conclude when the goal is secured")
        priority = {"conclude": 3, "disclose": 2, "ask": 1, "detour": 0}
        ranked = sorted(
            options,
            key=lambda o: (round(o.value - self.config.turn_cost * o.extra_turns, 3), priority[o.kind], -len(o.moves)),
            reverse=True,
        )
        chosen = ranked[0]
        if self.config.noise and len(ranked) > 1 and self.rng.random() < self.config.noise:
            chosen = self.rng.choice(ranked[1:])
        extra = np.zeros(len(tr.facts), dtype=bool)
        for f in chosen.facts:
            extra[tr.fact_index[f]] = True
        after = tr.choice_probs(extra, doubt=True)
        alternatives = []
        seen = {chosen.text}
        for o in ranked:
            if o.text not in seen and len(alternatives) < 4:
                seen.add(o.text)
                alternatives.append({"move": o.text, "p_goal": round(o.value, 3)})
        counterfactual = {
            "move": chosen.text,
            "p_goal_before": belief["p_goal"],
            "p_goal_after": round(chosen.value, 3),
            "predicted_choice": tr.props[int(after.argmax())],
            "alternatives": alternatives,
        }
        reasoning = self.reasoning(view, belief, chosen, ranked)
        message = phrasing.persuader_message(s, chosen.moves, self.rng)
        return PersuaderTurn(message, chosen.moves, reasoning, belief, counterfactual)

    def options(self, view: PersuaderView) -> list[Option]:
        tr, cfg = self.focus, self.config
        turns_left = view.turns_left
        n_facts = len(tr.facts)
        mass = tr.b.sum(axis=0)
        sign = np.where(tr.fact_prop == tr.goal, 1.0, -1.0)
        gain = tr.C * sign  # (S, F): >0 when knowing the fact helps the goal against its rivals
        open_facts = (~tr.known_obs) & (tr.fact_eff != 0)
        exp_gain = mass @ gain
        helps = (gain > 0) & open_facts
        # candidate disclosure plans: each likely preference vector's winning set, the safe set, greedy prefixes
        rows = {tuple(np.zeros(n_facts, dtype=bool))}
        codes = helps @ (1 << np.arange(n_facts, dtype=np.int64))  # each row as one integer, for a fast unique
        uniq, first_row, inverse = np.unique(codes, return_index=True, return_inverse=True)
        set_mass = np.bincount(inverse.ravel(), weights=mass, minlength=len(uniq))
        for i in np.argsort(-set_mass)[:40]:
            if set_mass[i] > 1e-4:
                rows.add(tuple(helps[first_row[i]]))
        p_hurt = mass @ ((gain < 0) & open_facts)
        rows.add(tuple(open_facts & (exp_gain > 0) & (p_hurt < 0.02)))
        order = [i for i in np.argsort(-exp_gain, kind="stable") if open_facts[i] and exp_gain[i] > 0]
        for j in range(1, len(order) + 1):
            row = np.zeros(n_facts, dtype=bool)
            row[order[:j]] = True
            rows.add(tuple(row))
        sets = np.array(sorted(rows), dtype=bool)
        sizes = sets.sum(axis=1)
        g = tr.goal_by_group(sets)  # (groups, D, S)
        gmass = tr.group_mass()  # (groups, S)
        values = np.einsum("gs,gds->d", gmass, g)
        per = cfg.per_message
        options: list[Option] = []
        p_now = float(values[sizes == 0][0])
        options.append(Option([Move("conclude")], p_now, "conclude", 0))

        def rank_facts(idx: np.ndarray) -> list[Fact]:
            facts = [tr.facts[i] for i in idx]
            return sorted(facts, key=lambda f: (f not in tr.doubted, -exp_gain[tr.fact_index[f]]))

        feasible = (sizes > 0) & (sizes <= per * turns_left)
        best_plan: np.ndarray | None = None
        if feasible.any():
            cand = np.flatnonzero(feasible)
            d = cand[np.lexsort((sizes[cand], -np.round(values[cand], 9)))[0]]
            best_plan = sets[d]
            facts = rank_facts(np.flatnonzero(sets[d]))
            chunk = facts[:per]
            n_chunks = -(-len(facts) // per)
            if len(facts) <= per:
                final = self._final_value(sets[d : d + 1], g[:, d : d + 1])
                options.append(Option([disclose(f) for f in chunk] + [Move("conclude")], final, "disclose", 0, chunk))
            if turns_left >= 2:
                moves = [disclose(f) for f in chunk] + [Move("ask_choice")]
                options.append(Option(moves, float(values[d]), "disclose", n_chunks, chunk))
        # single disclosures outside the plan: what a careless persuader would say, valued honestly
        plan = best_plan if best_plan is not None else np.zeros(n_facts, dtype=bool)
        singles = [i for i in np.flatnonzero(open_facts) if not plan[i]]
        plan_turns = -(-int(plan.sum()) // per)
        if singles:
            # a detour delays the plan by a turn: if the plan no longer fits, the detour is all that gets said
            last = turns_left <= 1 or plan_turns > turns_left - 1
            rows2 = np.repeat((plan if not last else np.zeros_like(plan))[None], len(singles), axis=0)
            rows2[np.arange(len(singles)), singles] = True
            if last:
                vals2 = np.einsum("ps,pds->d", tr.b, tr.goal_matrix(rows2, accept_all=False))
            else:
                vals2 = np.einsum("gs,gds->d", gmass, tr.goal_by_group(rows2))
            for i, v in zip(singles, vals2, strict=True):
                f = tr.facts[i]
                moves = [disclose(f)] + [Move("conclude") if last else Move("ask_choice")]
                options.append(Option(moves, float(v), "detour", 0 if last else plan_turns + 1, [f], "hurts"))
        if turns_left >= 2 and cfg.asks > 0:
            # the value of perfect information bounds what any question can add: skip them when it is nil
            # (of what it wants and how it chooses: questions cannot reveal more that changes a plan)
            later = sizes <= per * (turns_left - 1)
            codes = (np.sign(tr.W) + 1) @ (3 ** np.arange(len(tr.attrs)))
            _, cls = np.unique(codes, return_inverse=True)
            members = np.eye(cls.max() + 1)[cls.ravel()]  # (S, preference classes)
            per_class = (gmass[:, None, :] * g) @ members  # (groups, D, classes)
            perfect = float(np.where(later[None, :, None], per_class, 0.0).max(axis=1).sum())
            if perfect - max(o.value for o in options) > MIN_INFO_VALUE:
                options.extend(self._questions(sets, sizes, g, turns_left - 1))
        return options

    def _final_value(self, row: np.ndarray, full: np.ndarray) -> float:
        """P(goal) if these facts are the last thing said: a doubter may not believe a first-time claim."""
        tr = self.focus
        return float(np.einsum("ps,pds->d", tr.b, tr.goal_matrix(row, accept_all=False, full=full))[0])

    def _questions(self, sets: np.ndarray, sizes: np.ndarray, g: np.ndarray, turns_after: int) -> list[Option]:
        """Each question valued by the expected best plan over its possible answers (value of information)."""
        tr, cfg = self.focus, self.config
        feasible = sizes <= cfg.per_message * turns_after
        marg = tr.preference_marginals()
        unsure = sorted(
            (a for a in tr.attrs if max(marg[a].values()) < 0.98 and tr.declined.get(a, 0) < 3),
            key=lambda a: max(marg[a].values()),
        )

        answers: dict[str, list[np.ndarray]] = {}

        def answers_pref(attr: str) -> list[np.ndarray]:
            if attr not in answers:
                yes = tr.lik_answered(True)
                answers[attr] = [tr.lik_answered(False)] + [yes * tr.lik_preference(attr, v) for v in (1, 0, -1)]
            return answers[attr]

        # look-ahead past the answer: if a turn is left to ask again, the planner will end up knowing the
        # remaining preferences too, so an answer is worth at least the best plan per preference vector
        later = sizes <= cfg.per_message * (turns_after - 1)
        deeper = turns_after >= 2 and later.any()
        if deeper:  # per preference vector (class) the best later plan; an answer reweights whole classes
            codes = (np.sign(tr.W) + 1) @ (3 ** np.arange(len(tr.attrs)))
            _, cls = np.unique(codes, return_inverse=True)
            members = np.eye(cls.max() + 1)[cls.ravel()]  # (S, classes)
            class_mass = tr.b.sum(axis=0) @ members
            per_class = np.einsum("gs,gds->ds", tr.group_mass(), g) @ members  # (D, classes)
            class_best = np.where(later[:, None], per_class, -1.0).max(axis=0) / np.maximum(class_mass, 1e-300)

        def value(outcomes: list[np.ndarray], about_preferences: bool = False) -> float:
            joint = tr.b[None] * np.array(outcomes)  # (O, personalities, S)
            vals = np.einsum("ogs,gds->od", tr.group_mass(joint), g)
            best = np.where(feasible[None], vals, -1.0).max(axis=1)
            if deeper and about_preferences:
                best = np.maximum(best, (joint.sum(axis=1) @ members) @ class_best)
            return float(best.sum())

        # the choice is asked along with preference questions (as with disclosures): its answer costs no turn and
        # tells what the target already knows, which decides which disclosures are needed; valued without it
        out: list[Option] = []
        for attr in unsure[:4]:
            moves = [Move("ask_preference", attribute=attr), Move("ask_choice")]
            out.append(Option(moves, value(answers_pref(attr), True), "ask", 2, note=attr))
        if cfg.asks >= 2 and len(unsure) >= 2:
            a1, a2 = unsure[0], unsure[1]
            pairs = [x * y for x in answers_pref(a1) for y in answers_pref(a2)]
            moves = [Move("ask_preference", attribute=a1), Move("ask_preference", attribute=a2), Move("ask_choice")]
            out.append(Option(moves, value(pairs, True), "ask", 2, note=f"{a1}+{a2}"))
        matrix, answered = tr.choice_matrix(), tr.lik_answered(True)
        choice_out = [tr.lik_answered(False)] + [answered * tr.lik_choice(p, matrix) for p in tr.props]
        out.append(Option([Move("ask_choice")], value(choice_out), "ask", 2, note="choice"))
        if unsure:  # what the target knows matters once what it wants is settled
            return out
        knows = tr.knows_marginals()
        doubtful = sorted(
            (f for f, p in knows.items() if 0.05 < p < 0.95 and tr.scenario.effect(f) != 0 and not tr.known_obs[tr.fact_index[f]]),
            key=lambda f: abs(knows[f] - 0.5),
        )
        for f in doubtful[:2]:
            outs = [tr.lik_answered(False)] + [tr.lik_answered(True) * tr.lik_knows(f, v) for v in (1, 0)]
            out.append(Option([Move("ask_knowledge", fact=f)], value(outs), "ask", 2, note="knows"))
        return out

    # ----- words -----------------------------------------------------------------------------------------------
    def reasoning(self, view: PersuaderView, belief: dict[str, Any], chosen: Option, ranked: list[Option]) -> str:
        """A short paragraph built from the numbers behind the move."""
        s = view.scenario
        goal = s.proposal(s.goal).name
        likes, unsure = [], []
        for a, dist in belief["preferences"].items():
            label, p = max(dist.items(), key=lambda kv: kv[1])
            name = s.attribute(a).name
            if p >= 0.7:
                likes.append({"like": f"want more {name}", "dislike": f"want less {name}", "neutral": f"not care about {name}"}[label]
                             + f" ({p:.2f})")
            else:
                unsure.append(name)
        parts = []
        if likes:
            parts.append("They seem to " + phrasing._join(likes) + ".")
        if unsure:
            parts.append(f"I can't tell yet how they feel about {phrasing._join(unsure)}.")
        pred = s.proposal(belief["predicted_choice"]).name
        parts.append(f"If they decided now they would most likely pick {pred}; P({goal}) is {belief['p_goal']:.2f}.")
        v = round(chosen.value, 3)  # the figure the counterfactual records, so the two read alike
        if chosen.kind == "conclude":
            parts.append(f"{goal} looks as secure as it will get ({v:.2f}), so I ask for the decision.")
        elif chosen.kind in ("disclose", "detour"):
            said = phrasing._join([s.fact_sentence(f) for f in chosen.facts])
            verb = "and ask for the decision" if any(m.kind == "conclude" for m in chosen.moves) else "and check where they stand"
            parts.append(f"Telling them that {said}, {verb}, should move P({goal}) to {v:.2f}.")
        else:
            if chosen.note in ("choice", "knows"):
                what = "which option they favour" if chosen.note == "choice" else "what they already know"
            else:
                what = f"how they feel about {phrasing._join([s.attribute(a).name for a in chosen.note.split('+')])}"
            parts.append(f"Asking {what} is worth a turn: the answer decides what to say next (expected P({goal}) {v:.2f}).")
        others = [o for o in ranked if o.text != chosen.text]
        if others:
            alt = others[0]
            parts.append(f"The best alternative ({alt.text}) gives {alt.value:.2f}.")
        hurts = [o for o in ranked if o.kind == "detour" and o.value < chosen.value - 0.1 and o is not chosen]
        if hurts:
            worst = min(hurts, key=lambda o: o.value)
            parts.append(f"I won't mention that {s.fact_sentence(worst.facts[0])}: it would drop P({goal}) to {worst.value:.2f}.")
        return " ".join(parts)


def make(spec: PlayerSpec) -> Planner:
    planner = Planner(config(spec))
    if spec.argument or spec.options:
        planner.name = str(spec)  # the settings travel with every session and trajectory
    return planner


def register() -> None:
    from engine.players.registry import register_persuader

    register_persuader("planner", make, SPEC_HELP, options=OPTIONS, arguments=tuple(PRESETS))


__all__ = ["Option", "Planner", "PlannerConfig", "config", "make", "parse_spec"]
