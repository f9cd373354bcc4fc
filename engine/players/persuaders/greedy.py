"""`greedy`: a baseline with no theory of mind beyond the prior.

Each turn it discloses the one fact with the best expected gain in P(goal) under the *prior* belief (it never
asks and never updates on what the target says), and asks for the decision when no fact is expected to help or
on the last turn. It shows what planning and mental-state questions add over information alone.
"""

from __future__ import annotations

import random

import numpy as np

from engine.game import phrasing
from engine.game.interfaces import Persuader, PersuaderTurn, PersuaderView
from engine.game.moves import Move, disclose
from engine.players.belief import BeliefTracker


class Greedy(Persuader):
    name = "greedy"

    def start(self, view: PersuaderView, seed: int) -> None:
        self.rng = random.Random(f"{seed}:persuader")
        self.prior = BeliefTracker(view.scenario, "hidden", None)  # never updated: no theory of mind
        self.told = np.zeros(len(self.prior.facts), dtype=bool)

    def act(self, view: PersuaderView) -> PersuaderTurn:
        tr = self.prior
        gmass = tr.group_mass()
        candidates = [i for i in range(len(tr.facts)) if not self.told[i] and tr.fact_eff[i] != 0]
        rows = np.repeat(self.told[None], len(candidates) + 1, axis=0)
        for r, i in enumerate(candidates, 1):
            rows[r, i] = True
        values = np.einsum("gs,gds->d", gmass, tr.goal_by_group(rows))
        now = float(values[0])
        best = int(values[1:].argmax()) + 1 if candidates else 0
        moves: list[Move] = []
        alternatives = [
            {"move": f"disclose {tr.facts[candidates[r - 1]][0]}.{tr.facts[candidates[r - 1]][1]}", "p_goal": round(float(values[r]), 3)}
            for r in np.argsort(-values[1:])[1:4] + 1
        ]
        if best and values[best] > now + 1e-9:
            fact = tr.facts[candidates[best - 1]]
            self.told[candidates[best - 1]] = True
            moves.append(disclose(fact))
            after = float(values[best])
            reasoning = (
                f"Under my prior, telling them that {view.scenario.fact_sentence(fact)} raises P(goal) "
                f"from {now:.2f} to {after:.2f}, more than any other fact."
            )
        else:
            after = now
            reasoning = f"No remaining fact is expected to help (P(goal) {now:.2f}), so I ask for the decision."
        if not moves or view.turns_left <= 1:
            moves.append(Move("conclude"))
        counterfactual = {
            "move": "; ".join(m.text() for m in moves),
            "p_goal_before": round(now, 3),
            "p_goal_after": round(after, 3),
            "predicted_choice": tr.props[int(tr.choice_probs(self.told).argmax())],
            "alternatives": alternatives,
        }
        message = phrasing.persuader_message(view.scenario, moves, self.rng)
        return PersuaderTurn(message, moves, reasoning, tr.to_dict(), counterfactual)


def register() -> None:
    from engine.players.registry import register_persuader

    register_persuader("greedy", lambda _: Greedy(), "discloses the fact with the best expected gain under the prior, never asks")
