"""A Bayesian model of the target's mind: what it wants, what it knows, and how it will choose.

The hypothesis space is every preference vector in {-1, 0, +1}^k crossed with every set of facts the target may have
known at the start (all subsets of the facts that carry an effect for scenarios up to 3x3, a seeded stratified
sample for larger ones) and the six published personalities of the rule-based target
(`engine.players.targets.rational.PERSONALITIES`; in the revealed condition the persuader may be told which). The
prior over preferences is the scenario generator's; over knowledge, any number of facts is possible
(`knowledge_size_prior`), so a target that knows most facts (MindGames' knows 5 of 9) is as much in the belief as
the generator's; where the game makes the number public (`Scenario.target_knows_count`), only sets of that size. It
is conditioned on what every playable scenario satisfies (a unique first choice that is not the goal, and some true
disclosures would make the goal its unique best) and on what the scenario's design makes public
(`Scenario.full_knowledge_best`: MindGames' target, told every fact, picks a third proposal). Every reply is folded
in by Bayes' rule with the same numbers the rule-based target uses (its choice rule is
`engine.game.rules.choose_array`), mixed with a small noise term so that a target that does not follow the model (a
language model, a person) bends the belief instead of breaking it. What MindGames' target says is read too: a
`knows` statement for every fact of a proposal, and a choice stated with its whole ranking.

Arrays are numpy over at most some ten thousand states, so a whole game's updates cost milliseconds.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
from collections.abc import Iterable
from typing import Any

import numpy as np

from engine.game.interfaces import Exchange, HiddenState
from engine.game.rules import choose_array
from engine.game.scenario import Fact, Scenario, fact_key, parse_fact
from engine.players.targets.rational import PERSONALITIES

PREF_PRIOR = {-1: 0.4, 0: 0.2, 1: 0.4}  # the generator draws from (-1, 0, 1, 1, -1)
PREF_LABELS = {1: "like", 0: "neutral", -1: "dislike"}
MAX_KNOWLEDGE_SETS = 512  # every starting-knowledge set up to this many (3x3); larger scenarios sample this many
BROAD_SHARE = 0.5  # prior mass on "any number of facts known", beside the generator's own 2..F/3
PRUNE = 1e-5  # states below this share of the likeliest one are dropped (speed; mass lost is tiny)


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def knowledge_size_prior(f_count: int, known: int | None = None) -> np.ndarray:
    """P(the target starts knowing z of the `f_count` facts), z = 0..f_count, every set of one size equally likely.

    `known`: the number the game makes public (`Scenario.target_knows_count`), which then has all the mass.
    Otherwise half the mass is the lab generator's own draw (2 to a third of the facts) and the other half is spread
    evenly over every size, so a target that knows most facts (MindGames' knows 5 of 9) is covered as well as one
    that knows few.
    """
    if known is not None:
        return np.eye(f_count + 1)[known]
    out = np.full(f_count + 1, BROAD_SHARE / (f_count + 1))
    lo, hi = min(2, f_count), min(f_count, max(2, f_count // 3))
    out[lo : hi + 1] += (1 - BROAD_SHARE) / (hi - lo + 1)
    return out


class BeliefTracker:
    """Posterior over (personality, preference vector, starting knowledge) of the target.

    `observe(exchange)` folds in one finished turn; `to_dict()` gives the shared belief schema. The planner also
    uses the simulation methods (`choice_probs`, `goal_values`, the `lik_*` likelihoods) to predict counterfactuals.
    """

    def __init__(
        self,
        scenario_side: Scenario,
        condition: str = "hidden",
        revealed: HiddenState | None = None,
        *,
        eps: float = 0.01,
        max_knowledge_sets: int = MAX_KNOWLEDGE_SETS,
    ) -> None:
        s = self.scenario = scenario_side
        self.condition = condition
        self.eps = eps
        self.props = list(s.proposal_ids)
        self.attrs = list(s.attribute_ids)
        self.facts: list[Fact] = list(s.facts)
        self.fact_index = {f: i for i, f in enumerate(self.facts)}
        self.goal = self.props.index(s.goal)
        n, f_count = len(self.props), len(self.facts)
        self.fact_prop = np.array([self.props.index(p) for p, _ in self.facts])
        self.fact_attr = np.array([self.attrs.index(a) for _, a in self.facts])
        self.fact_eff = np.array([s.effect(f) for f in self.facts], dtype=float)
        self._facts_of = [np.flatnonzero(self.fact_prop == p) for p in range(n)]
        self.onehot = np.zeros((f_count, n))
        self.onehot[np.arange(f_count), self.fact_prop] = 1.0
        # personalities: the same parameters the rule-based target plays with
        self.pers = list(PERSONALITIES.values())
        self.answer = np.array([p.answer_prob for p in self.pers])
        self.accept = np.array([p.accept_prob for p in self.pers])
        self.volunteers = np.array([p.volunteer for p in self.pers])
        self.groups = sorted({(p.first_choice_bonus, p.temperature) for p in self.pers})
        self.group_of = np.array([self.groups.index((p.first_choice_bonus, p.temperature)) for p in self.pers])
        self._group_onehot = np.eye(len(self.groups))[self.group_of]  # (personalities, groups)

        if revealed is not None:
            w = np.array([[revealed.preferences.get(a, 0.0) for a in self.attrs]])
            k0 = np.array([[f in revealed.target_knows for f in self.facts]])
            prior = np.ones(1)
        else:
            w, k0, prior = self._hypotheses(max_knowledge_sets)
        self.W, self.K0 = w, k0
        self.C = w[:, self.fact_attr] * self.fact_eff  # (S, F): what knowing each fact adds to its proposal
        v0 = (k0 * self.C) @ self.onehot
        self.first = self._pick(v0, None)
        self._first_onehot = np.eye(len(self.props))[self.first]
        if revealed is None:  # every playable scenario is interesting: condition the prior on it
            gain = self.C * np.where(self.fact_prop == self.goal, 1.0, -1.0)
            vwin = ((k0 | (gain > 0)) * self.C) @ self.onehot
            rivals = np.delete(vwin, self.goal, axis=1)
            ok = (self.first >= 0) & (self.first != self.goal) & (vwin[:, self.goal] > rivals.max(axis=1))
            if s.full_knowledge_best == "other":  # the game's design: knowing every fact, a third proposal wins
                informed = self._pick(self.C @ self.onehot, None)
                ok &= (informed >= 0) & (informed != self.goal) & (informed != self.first)
            prior = prior * ok
        told = revealed.personality if revealed is not None else None
        pers_prior = np.array([p.name == told for p in self.pers], dtype=float)  # revealed: it may be told it
        if not pers_prior.any():
            pers_prior[:] = 1.0  # unknown: a posterior over all of them, from an even prior
        self.b = np.outer(pers_prior / pers_prior.sum(), prior)
        self.fav = {g: self.first.copy() for g, (_, temp) in enumerate(self.groups) if temp == 0}
        self.known_obs = np.zeros(f_count, dtype=bool)  # facts the target has taken in (it said so)
        self.doubted: set[Fact] = set()
        self.stated: set[str] = set()
        self.asked_pref: dict[str, int] = {}
        self._cache: dict[tuple, np.ndarray] = {}
        self.declined: dict[str, int] = {}
        self._normalise()

    # ----- the prior ---------------------------------------------------------------------------------------
    def _hypotheses(self, max_sets: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = len(self.attrs)
        ws, wp = [], []
        for vec in itertools.product((-1, 0, 1), repeat=k):
            if k >= 2 and sum(1 for v in vec if v) < 2:
                continue  # the generator always gives the target at least two concerns
            ws.append(vec)
            wp.append(math.prod(PREF_PRIOR[v] for v in vec))
        kmat, weights = self._knowledge_sets(max_sets)
        w_arr = np.repeat(np.array(ws, dtype=float), len(kmat), axis=0)
        k_arr = np.tile(kmat, (len(ws), 1))
        prior = np.outer(np.array(wp), weights).ravel()
        return w_arr, k_arr, prior

    def _knowledge_sets(self, max_sets: int) -> tuple[np.ndarray, np.ndarray]:
        """Starting-knowledge hypotheses (sets x facts) and their prior weights, under `knowledge_size_prior`.

        Knowing a fact with no effect changes no value, so only the facts with an effect are enumerated (such facts
        are treated as not known until the target says otherwise) and each set's weight sums over the no-effect
        facts that may come with it. Every subset is a hypothesis while there are at most `max_sets`; beyond, a
        seeded sample stratified by size, each drawn set weighted by the share of its size it stands for.
        """
        f_count = len(self.facts)
        eff_idx = np.flatnonzero(self.fact_eff != 0)
        n_eff, n_zero = len(eff_idx), f_count - len(eff_idx)
        size_p = knowledge_size_prior(f_count, self.scenario.target_knows_count)
        one_set = np.array([  # the prior of one particular set of z facts with an effect
            sum(math.comb(n_zero, j) * size_p[z + j] / math.comb(f_count, z + j) for j in range(n_zero + 1))
            for z in range(n_eff + 1)
        ])
        if 2**n_eff <= max_sets:
            codes = np.arange(2**n_eff)
            bits = ((codes[:, None] >> np.arange(n_eff)) & 1).astype(bool)
            weights = one_set[bits.sum(axis=1)]
        else:
            rng = random.Random(f"belief:{self.scenario.id}")
            by_size = np.array([math.comb(n_eff, z) * one_set[z] for z in range(n_eff + 1)])
            quota = np.maximum(1, np.round(by_size / by_size.sum() * max_sets)).astype(int)
            rows, weights_list = [], []
            for z in range(n_eff + 1):
                drawn: set[tuple[int, ...]] = set()
                while len(drawn) < min(quota[z], math.comb(n_eff, z)):
                    drawn.add(tuple(sorted(rng.sample(range(n_eff), z))))
                for combo in sorted(drawn):
                    row = np.zeros(n_eff, dtype=bool)
                    row[list(combo)] = True
                    rows.append(row)
                    weights_list.append(by_size[z] / len(drawn))
            bits, weights = np.array(rows), np.array(weights_list)
        kmat = np.zeros((len(bits), f_count), dtype=bool)
        kmat[:, eff_idx] = bits
        return kmat, weights

    # ----- the target's choice rule, vectorised ----------------------------------------------------------
    def _pick(self, vals: np.ndarray, fav: np.ndarray | None) -> np.ndarray:
        """`rules.choose` over the last axis: the unique best, else the favourite (-1: tied with none yet)."""
        return choose_array(vals, fav)

    def knows_now(self) -> np.ndarray:
        return self.K0 | self.known_obs

    def values_now(self, extra: np.ndarray | None = None) -> np.ndarray:
        """Each state's proposal values (S, n), optionally as if the facts in `extra` (F,) were also known."""
        known = self.knows_now() if extra is None else self.knows_now() | extra
        return (known * self.C) @ self.onehot

    def group_choice(self, vals: np.ndarray, group: int, only: int | None = None) -> np.ndarray:
        """P(choice = proposal) for each state under one choice model: (..., S, n), or (..., S) for `only`."""
        bonus, temp = self.groups[group]
        n = len(self.props)
        if bonus:
            vals = vals + bonus * self._first_onehot
        if temp > 0:
            z = np.exp((vals - vals.max(axis=-1, keepdims=True)) / temp)
            z /= z.sum(axis=-1, keepdims=True)
            return z if only is None else z[..., only]
        picked = self._pick(vals, self.fav[group])
        return np.eye(n)[picked] if only is None else (picked == only).astype(float)

    def choice_probs(self, extra: np.ndarray | None = None, doubt: bool = False) -> np.ndarray:
        """P(the target would choose each proposal now, or once told the facts `extra`), marginalised over the belief.

        With `doubt` (the choice right after a message), a first-time claim in `extra` is taken in only with each
        personality's accept probability, as the rule-based target does; without, every fact in `extra` is known.
        """
        sure = np.zeros(len(self.facts), dtype=bool) if extra is None else extra.copy()
        doubted = np.array([f in self.doubted for f in self.facts])
        fresh = np.flatnonzero(sure & ~self.known_obs & ~doubted) if doubt else np.zeros(0, dtype=int)
        sure[fresh] = False
        out = np.zeros(len(self.props))
        for r in range(len(fresh) + 1):
            for kept in itertools.combinations(fresh, r):
                row = sure.copy()
                row[list(kept)] = True
                vals = self.values_now(row)
                per_group = [self.group_choice(vals, g) for g in range(len(self.groups))]
                weight = self.accept**r * (1 - self.accept) ** (len(fresh) - r)  # per personality
                for p in np.flatnonzero(weight > 0):
                    out += weight[p] * (self.b[p] @ per_group[self.group_of[p]])
        return out / max(out.sum(), 1e-12)

    def group_mass(self, weights: np.ndarray | None = None) -> np.ndarray:
        """Belief (or belief x likelihood, shape (..., P, S)) summed over personalities that choose alike."""
        w = self.b if weights is None else weights
        return np.einsum("...ps,pg->...gs", w, self._group_onehot)

    def goal_by_group(self, disclose: np.ndarray) -> np.ndarray:
        """P(final choice = goal) per (choice model, candidate set, state) once the sets (D, F) are taken in."""
        known = self.knows_now()
        base = (known * self.C) @ self.onehot
        fresh = (~known) * self.C  # (S, F): what each fact would add if the target took it in now
        rows = disclose.astype(float)
        vals = np.empty((len(disclose), len(base), len(self.props)))
        for p, idx in enumerate(self._facts_of):  # per proposal, one small matrix product: (D, k) @ (k, S)
            vals[:, :, p] = base[:, p] + rows[:, idx] @ fresh[:, idx].T
        return np.stack([self.group_choice(vals, g, self.goal) for g in range(len(self.groups))])

    def goal_matrix(self, disclose: np.ndarray, accept_all: bool = True, full: np.ndarray | None = None) -> np.ndarray:
        """P(final choice = goal) per (personality, candidate set, state) if the sets (D, F) are disclosed.

        With `accept_all` every disclosure is taken in (doubted ones repeated later); without it, this is the
        last message, so a first-time disclosure is believed only with each personality's accept probability.
        `full` is `goal_by_group(disclose)` when the caller has it already.
        """
        goal_prob = self.goal_by_group
        full = goal_prob(disclose) if full is None else full
        out = full[self.group_of]
        if accept_all:
            return out
        n_sets = disclose.shape[0]
        mass = self.b.sum(axis=1)
        doubtful = [p for p in range(len(self.pers)) if self.accept[p] < 1.0 and mass[p] > 1e-9]
        if not doubtful:
            return out
        repeat = np.array([f in self.doubted for f in self.facts])
        for p in doubtful:
            acc = np.zeros((n_sets, len(self.W)))
            for d in range(n_sets):
                fresh = [i for i in np.flatnonzero(disclose[d]) if not repeat[i]]
                sure = disclose[d] & repeat
                subsets = []
                for r in range(len(fresh) + 1):
                    for kept in itertools.combinations(fresh, r):
                        row = sure.copy()
                        row[list(kept)] = True
                        prob = self.accept[p] ** r * (1 - self.accept[p]) ** (len(fresh) - r)
                        subsets.append((row, prob))
                rows = np.array([r for r, _ in subsets])
                probs = np.array([q for _, q in subsets])
                acc[d] = probs @ goal_prob(rows)[self.group_of[p]]
            out[p] = acc
        return out

    # ----- likelihoods of what the target may say ----------------------------------------------------------
    def _noisy(self, lik: np.ndarray, base: float) -> np.ndarray:
        return (1 - self.eps) * lik + self.eps * base

    def _cached(self, key: tuple, make: Any) -> np.ndarray:
        """Likelihood arrays depend only on the state set and what was observed: build each once per update."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def lik_preference(self, attr: str, value: int) -> np.ndarray:
        def make() -> np.ndarray:
            signs = np.sign(self.W[:, self.attrs.index(attr)])
            return self._noisy(np.broadcast_to(signs == value, self.b.shape).astype(float), 1 / 3)

        return self._cached(("pref", attr, value), make)

    def lik_knows(self, fact: Fact, value: int) -> np.ndarray:
        if self.scenario.effect(fact) == 0 and not self.known_obs[self.fact_index[fact]]:
            return np.ones(self.b.shape)  # starting knowledge of no-effect facts is not modelled (see _hypotheses)
        col = self.knows_now()[:, self.fact_index[fact]]
        return self._noisy(np.broadcast_to(col == bool(value), self.b.shape).astype(float), 0.5)

    def choice_matrix(self) -> np.ndarray:
        """P(the target names each proposal as its favourite now), per (personality, state, proposal)."""

        def make() -> np.ndarray:
            vals = self.values_now()
            per_group = [self.group_choice(vals, g) for g in range(len(self.groups))]
            return np.stack([per_group[g] for g in self.group_of])

        return self._cached(("choice",), make)

    def lik_choice(self, proposal: str, matrix: np.ndarray | None = None) -> np.ndarray:
        matrix = self.choice_matrix() if matrix is None else matrix
        return self._noisy(matrix[..., self.props.index(proposal)], 1 / len(self.props))

    def lik_ranking(self, ranking: str) -> np.ndarray:
        """A stated ranking of the current values (bonus included), `A>B=C`: it fixes the sign of every difference."""
        place = {p: i for i, group in enumerate(ranking.split(">")) for p in group.split("=")}
        if set(place) != set(self.props):
            return np.ones(self.b.shape)  # not a ranking of this scenario's proposals: no evidence
        order = np.array([place[p] for p in self.props])
        want = np.sign(order[None, :] - order[:, None])  # (n, n): +1 where row proposal ranks above column's
        vals = self.values_now()
        fits = []
        for bonus, _ in self.groups:
            v = vals + bonus * self._first_onehot if bonus else vals
            diff = v[:, :, None] - v[:, None, :]
            got = np.where(np.abs(diff) < 1e-9, 0, np.sign(diff))
            fits.append((got == want).all(axis=(1, 2)))
        return self._noisy(np.array(fits)[self.group_of].astype(float), 1 / len(self.props))

    def lik_answered(self, answered: bool) -> np.ndarray:
        col = self.answer if answered else 1 - self.answer
        return self._cached(("answered", answered), lambda: self._noisy(np.broadcast_to(col[:, None], self.b.shape), 0.5))

    # ----- updating on a finished turn ---------------------------------------------------------------------
    def _normalise(self) -> None:
        total = self.b.sum()
        if total <= 0 or not np.isfinite(total):  # nothing fits: fall back to an even belief over survivors
            self.b = np.ones_like(self.b)
            total = self.b.sum()
        self.b /= total
        mass = self.b.sum(axis=0)
        keep = mass > PRUNE * mass.max()
        if not keep.all() and keep.any():
            self._keep(keep)
            self.b /= self.b.sum()

    def _keep(self, keep: np.ndarray) -> None:
        self._cache = {}
        self.b = self.b[:, keep]
        self.W, self.K0, self.C, self.first = self.W[keep], self.K0[keep], self.C[keep], self.first[keep]
        self._first_onehot = self._first_onehot[keep]
        self.fav = {g: f[keep] for g, f in self.fav.items()}

    def focused(self, share: float) -> BeliefTracker:
        """A copy restricted to states with at least `share` of the likeliest state's mass, renormalised.

        Planning over it is several times faster once answers have come in, while this tracker keeps the long
        tail, so a target that answered against the model can still be recognised later.
        """
        mass = self.b.sum(axis=0)
        keep = mass >= share * mass.max()
        if keep.all():
            return self
        out = copy.copy(self)
        out.fav = dict(self.fav)
        out._keep(keep)
        out.b = out.b / out.b.sum()
        return out

    def observe(self, exchange: Exchange) -> None:
        """Fold in one finished turn (the moves that reached the target and what it said back)."""
        self._cache = {}
        stmts = list(exchange.statements)
        by_kind: dict[tuple[str, str], list[Any]] = {}
        for st in stmts:
            by_kind.setdefault((st.kind, st.subject), []).append(st.value)
        lik = np.ones(self.b.shape)
        # 1. disclosures, in the order the target takes them
        for m in exchange.moves:
            if m.kind != "disclose" or not m.fact:
                continue
            i = self.fact_index[m.fact]
            said = by_kind.get(("accepted", fact_key(m.fact)), [])
            first_time = not self.known_obs[i] and m.fact not in self.doubted
            heard = bool(said)  # a target that says nothing about it is taken to have heard it
            value = said.pop(0) if said else 1
            if first_time and heard:
                k0 = self.K0[:, i][None, :]
                if value:
                    lik *= self._noisy(k0 + (~k0) * self.accept[:, None], 0.5)
                else:
                    lik *= self._noisy((~k0) * (1 - self.accept[:, None]), 0.5)
            if value:
                self.known_obs[i] = True
                self.doubted.discard(m.fact)
            else:
                self.doubted.add(m.fact)
        # 2. questions, answered or declined
        asked_now: set[str] = set()
        for m in exchange.moves:
            if m.kind not in ("ask_preference", "ask_knowledge", "ask_choice"):
                continue
            subject = m.text().split(" ", 1)[-1]
            if ("declined", subject) in by_kind:
                lik *= self.lik_answered(False)
                self.declined[subject] = self.declined.get(subject, 0) + 1
                continue
            if m.kind == "ask_preference" and m.attribute:
                self.asked_pref[m.attribute] = self.asked_pref.get(m.attribute, 0) + 1
                vals = by_kind.get(("preference", m.attribute))
                if vals:
                    lik *= self.lik_answered(True) * self.lik_preference(m.attribute, int(vals[0]))
                    self.stated.add(m.attribute)
                    asked_now.add(m.attribute)
            elif m.kind == "ask_knowledge" and m.fact and ("knows", fact_key(m.fact)) in by_kind:
                lik *= self.lik_answered(True)
        # every fact the target says it knows or not (MindGames' target answers for a whole proposal at once)
        for st in stmts:
            if st.kind == "knows" and parse_fact(st.subject) in self.fact_index:
                lik *= self.lik_knows(parse_fact(st.subject), int(st.value or 0))
        # 3. a preference nobody asked for: only the open personality volunteers one, the strongest unstated
        unstated = [a for a in self.attrs if a not in self.stated]
        volunteered = [st for st in stmts if st.kind == "preference" and st.subject not in asked_now]
        if unstated:
            open_lik = np.zeros(len(self.W))
            if volunteered and volunteered[0].subject in unstated:
                st = volunteered[0]
                cols = [self.attrs.index(a) for a in unstated]
                strongest = np.abs(self.W[:, cols]).argmax(axis=1)
                picked = np.array(cols)[strongest] == self.attrs.index(st.subject)
                open_lik = picked & (np.sign(self.W[:, self.attrs.index(st.subject)]) == int(st.value or 0))
                lik *= self._noisy(np.where(self.volunteers[:, None], open_lik[None, :], 0.0), 0.5)
            else:
                lik *= self._noisy(np.where(self.volunteers[:, None], 0.0, 1.0) * np.ones(self.b.shape), 0.5)
        for st in volunteered:
            self.stated.add(st.subject)
        # 4. the target re-picks its favourite after every message; then a stated choice is evidence
        vals = self.values_now()
        for g in self.fav:
            bonus = self.groups[g][0]
            v = vals + bonus * self._first_onehot if bonus else vals
            self.fav[g] = self._pick(v, self.fav[g])
        self._cache = {}  # knowledge and favourites moved: choice likelihoods must be rebuilt
        for st in stmts:
            if st.kind == "choice" and st.subject in self.props:
                lik *= self.lik_answered(True) * self.lik_choice(st.subject)
                if isinstance(st.value, str):  # MindGames' target gives its whole ranking, e.g. `A>B=C`
                    lik *= self.lik_ranking(st.value)
        self.b = self.b * lik
        self._cache = {}
        self._normalise()

    def observe_all(self, exchanges: Iterable[Exchange]) -> None:
        for ex in exchanges:
            self.observe(ex)

    # ----- summaries ---------------------------------------------------------------------------------------
    def preference_marginals(self) -> dict[str, dict[int, float]]:
        mass = self.b.sum(axis=0)
        out: dict[str, dict[int, float]] = {}
        for j, a in enumerate(self.attrs):
            signs = np.sign(self.W[:, j])
            out[a] = {v: float(mass[signs == v].sum()) for v in (1, 0, -1)}
        return out

    def knows_marginals(self) -> dict[Fact, float]:
        mass = self.b.sum(axis=0)
        known = self.knows_now()
        return {f: float(mass @ known[:, i]) for i, f in enumerate(self.facts)}

    def state_mass(self, preferences: dict[str, float], knows: Iterable[Fact]) -> float:
        """Belief mass on one (preference signs, starting knowledge) state: 0 when the belief has ruled it out."""
        signs, known = np.sign([preferences.get(a, 0.0) for a in self.attrs]), set(knows)
        start = np.array([f in known for f in self.facts]) & (self.fact_eff != 0)
        match = (np.sign(self.W) == signs).all(axis=1) & ((self.K0 & (self.fact_eff != 0)) == start).all(axis=1)
        return float(self.b[:, match].sum())

    def personality_marginals(self) -> dict[str, float]:
        return {p.name: float(m) for p, m in zip(self.pers, self.b.sum(axis=1), strict=True)}

    def to_dict(self) -> dict[str, Any]:
        """The shared belief schema: per-attribute P(like/neutral/dislike), predicted choice, P(goal now)."""
        probs = self.choice_probs()
        prefs = {
            a: {PREF_LABELS[v]: round(p, 3) for v, p in dist.items()} for a, dist in self.preference_marginals().items()
        }
        return {
            "preferences": prefs,
            "predicted_choice": self.props[int(probs.argmax())],
            "p_goal": round(float(probs[self.goal]), 3),
        }

    def accuracy(self, true_preferences: dict[str, float]) -> float:
        """Share of attributes whose most likely preference sign is the true one."""
        marg = self.preference_marginals()
        hits = [max(marg[a], key=marg[a].get) == _sign(true_preferences.get(a, 0.0)) for a in self.attrs]
        return sum(hits) / len(hits)


__all__ = ["BeliefTracker", "PREF_LABELS"]
