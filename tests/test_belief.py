"""The belief tracker: Bayes' rule on what the rule-based target says, in the shared belief schema."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine.game.interfaces import Exchange, HiddenState, Statement, persuader_side
from engine.game.mindgames import SCENARIOS_PATH as MINDGAMES_PATH
from engine.game.moves import Move, disclose
from engine.game.rules import initial_choice, values
from engine.game.scenario import load_file
from engine.players.belief import BeliefTracker
from engine.players.targets.rational import PERSONALITIES


def _tracker(scenario, condition="hidden"):
    revealed = HiddenState(dict(scenario.preferences), scenario.target_knows) if condition == "revealed" else None
    return BeliefTracker(persuader_side(scenario), condition, revealed)


def _ex(moves, statements):
    return Exchange("", moves, "", [Statement(*s) for s in statements], [])


def test_prior_is_the_schema_and_conditioned_on_a_playable_scenario(business):
    tr = _tracker(business)
    d = tr.to_dict()
    assert set(d) == {"preferences", "predicted_choice", "p_goal"}
    for dist in d["preferences"].values():
        assert set(dist) == {"like", "neutral", "dislike"}
        assert sum(dist.values()) == pytest.approx(1.0, abs=0.01)
    # every playable scenario starts with the target away from the goal, and the prior knows it
    assert d["p_goal"] < 0.2 and d["predicted_choice"] != business.goal


def test_revealed_state_is_certain(business):
    tr = _tracker(business, "revealed")
    for attr, dist in tr.preference_marginals().items():
        assert dist[int(business.preferences[attr] > 0) - int(business.preferences[attr] < 0)] == pytest.approx(1.0)
    assert tr.to_dict()["predicted_choice"] == initial_choice(business)


def test_stated_preference_is_believed(business):
    tr = _tracker(business)
    tr.observe(_ex([Move("ask_preference", attribute="cost")], [("preference", "cost", -1)]))
    assert tr.preference_marginals()["cost"][-1] > 0.98
    assert tr.accuracy(business.preferences) >= 1 / 3


def test_behaviour_reveals_the_personality(business):
    doubter = _tracker(business)
    fact = ("A", "cost")
    doubter.observe(_ex([disclose(fact)], [("accepted", "A.cost", 0)]))
    assert doubter.personality_marginals()["skeptical"] > 0.9
    assert doubter.knows_marginals()[fact] == pytest.approx(0.0, abs=0.02)  # doubted: not taken in
    shy = _tracker(business)
    shy.observe(_ex([Move("ask_preference", attribute="cost")], [("declined", "cost")]))
    assert shy.personality_marginals()["reserved"] > 0.9
    talker = _tracker(business)
    first = talker.attrs[0]  # the open target volunteers its strongest concern, the earliest on a tie
    talker.observe(_ex([Move("appeal")], [("preference", first, 1)]))  # volunteered, nobody asked
    assert talker.personality_marginals()["open"] > 0.9
    assert talker.preference_marginals()[first][1] > 0.9
    quiet = _tracker(business)
    quiet.observe(_ex([Move("appeal")], []))
    assert quiet.personality_marginals()["open"] < 0.01


def test_true_state_survives_a_whole_game(library):
    """Against the rule-based target, the likelihoods are the target's own numbers: the truth is never ruled out."""
    from engine.game.episode import play
    from engine.players.persuaders.planner import Planner
    from engine.players.targets.rational import PERSONALITIES, RationalTarget

    scenario = library.get("heldout-20261129-00003")
    for i, pers in enumerate(PERSONALITIES):
        planner = Planner()
        ep = play(scenario, planner, RationalTarget(), personality=pers, seed=i)
        last = ep.turns[-1]
        planner.tracker.observe(Exchange(last.message, last.moves, last.target_reply, last.statements, []))
        tr = planner.tracker
        signs = [int(scenario.preferences[a] > 0) - int(scenario.preferences[a] < 0) for a in tr.attrs]
        right_prefs = (signs == tr.W).all(axis=1)
        truth = right_prefs & ([f in scenario.target_knows for f in tr.facts] == tr.K0).all(axis=1)
        assert truth.any(), pers
        assert tr.b[:, right_prefs].sum() > 0.5, pers  # the true preferences are the likeliest explanation
        assert tr.personality_marginals()[pers] > 0.1, pers


def test_knowledge_prior_covers_every_number_of_known_facts():
    from engine.players.belief import knowledge_size_prior

    size_p = knowledge_size_prior(9)
    assert size_p.sum() == pytest.approx(1.0) and (size_p > 0).all()
    assert size_p[2] > size_p[5] > 0  # the generator's own sizes stay likelier, MindGames' 5 of 9 is in
    for s in load_file(MINDGAMES_PATH)[:12]:  # the target knows 5 of the 9 facts
        assert BeliefTracker(persuader_side(s)).state_mass(s.preferences, s.target_knows) > 0, s.id


def test_a_public_number_of_known_facts_is_the_only_size_in_the_prior():
    from engine.players.belief import knowledge_size_prior

    assert knowledge_size_prior(9, 5).tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 0, 0]
    s = load_file(MINDGAMES_PATH)[3]
    side = persuader_side(s)
    assert side.target_knows_count == 5 and not side.target_knows  # the count is public, the set is not
    tr = BeliefTracker(side)
    assert tr.state_mass(s.preferences, s.target_knows) > 0
    assert tr.state_mass(s.preferences, sorted(s.target_knows)[:4]) == 0  # four known facts: not this game
    blind = BeliefTracker(dataclasses.replace(side, target_knows_count=None))
    assert blind.state_mass(s.preferences, sorted(s.target_knows)[:4]) > 0
    assert tr.state_mass(s.preferences, s.target_knows) > blind.state_mass(s.preferences, s.target_knows)


def test_a_public_full_knowledge_best_conditions_the_prior():
    """MindGames' generator: told every fact, the target picks a third proposal; the prior keeps only such states."""
    from engine.game.rules import choose_array

    s = load_file(MINDGAMES_PATH)[3]
    side = persuader_side(s)
    told, blind = BeliefTracker(side), BeliefTracker(dataclasses.replace(side, full_knowledge_best=None))
    for tr, breaks in ((told, False), (blind, True)):
        informed = choose_array(tr.C @ tr.onehot, None)
        third = (informed >= 0) & (informed != tr.goal) & (informed != tr.first)
        assert bool((tr.b.sum(axis=0)[~third] > 0).any()) is breaks
    assert told.state_mass(s.preferences, s.target_knows) > blind.state_mass(s.preferences, s.target_knows) > 0


def test_mindgames_answers_are_evidence(business):
    tr = _tracker(business)
    pid = business.proposal_ids[0]
    statements = [("knows", f"{pid}.{a}", int((pid, a) in business.target_knows)) for a in business.attribute_ids]
    tr.observe(_ex([Move("ask_knowledge", fact=(pid, business.attribute_ids[0]))], statements))
    for a in business.attribute_ids:  # one question, a whole proposal's knowledge
        if business.effect((pid, a)):
            assert tr.knows_marginals()[(pid, a)] == pytest.approx(float((pid, a) in business.target_knows), abs=0.05)
    start = initial_choice(business)
    rivals = "=".join(p for p in business.proposal_ids if p != start)
    ranked = _tracker(business)
    ranked.observe(_ex([Move("ask_choice")], [("choice", start, f"{start}>{rivals}")]))
    plain = _tracker(business)
    plain.observe(_ex([Move("ask_choice")], [("choice", start)]))
    mass = ranked.b.sum(axis=0)
    vals = ranked.values_now()
    others = [ranked.props.index(p) for p in business.proposal_ids if p != start]
    tied = np.isclose(vals[:, others[0]], vals[:, others[1]])
    assert mass[tied].sum() > 0.98  # the ranking says the two rivals are level
    assert ranked.b.shape[1] < plain.b.shape[1]


def test_revealed_personality_is_believed(business):
    revealed = HiddenState(dict(business.preferences), business.target_knows, "stubborn")
    tr = BeliefTracker(persuader_side(business), "revealed", revealed)
    assert tr.personality_marginals()["stubborn"] == pytest.approx(1.0)
    assert _tracker(business, "revealed").personality_marginals()["stubborn"] == pytest.approx(1 / 6)


def test_a_told_impulsive_target_is_predicted_with_its_softmax(business):
    """Told the personality, the belief predicts the impulsive target's choice with the target's own temperature."""
    temp = PERSONALITIES["impulsive"].temperature
    revealed = HiddenState(dict(business.preferences), business.target_knows, "impulsive")
    tr = BeliefTracker(persuader_side(business), "revealed", revealed)
    everything = np.ones(len(tr.facts), dtype=bool)
    for extra, known in ((None, business.target_knows), (everything, set(business.facts))):
        vals = values(business, business.preferences, known)
        z = np.exp(np.array([vals[p] for p in tr.props]) / temp)
        assert tr.choice_probs(extra) == pytest.approx(z / z.sum())


@pytest.mark.parametrize("rules", ["lab", "mindgames"])
def test_true_state_survives_a_mindgames_game(rules):
    """A target that knows 5 of 9 facts, under either protocol: the truth stays the likeliest explanation."""
    from engine.game.episode import play
    from engine.players.persuaders.planner import Planner
    from engine.players.targets.rational import PERSONALITIES, RationalTarget

    scenario = load_file(MINDGAMES_PATH)[7]
    for i, pers in enumerate(PERSONALITIES):
        planner = Planner()
        ep = play(scenario, planner, RationalTarget(), personality=pers, seed=i, rules=rules)
        last = ep.turns[-1]
        planner.tracker.observe(Exchange(last.message, last.moves, last.target_reply, last.statements, []))
        assert planner.tracker.state_mass(scenario.preferences, scenario.target_knows) > 0, pers
        assert planner.tracker.personality_marginals()[pers] > 0.1, pers


def test_a_skeptical_target_may_not_take_a_first_claim_in(business):
    from engine.game.rules import winning_disclosures

    told = winning_disclosures(business) - business.target_knows
    for pers, believed in (("cooperative", True), ("skeptical", False)):
        revealed = HiddenState(dict(business.preferences), business.target_knows, pers)
        tr = BeliefTracker(persuader_side(business), "revealed", revealed)
        extra = np.array([f in told for f in tr.facts])
        goal = tr.props.index(business.goal)
        assert tr.choice_probs(extra)[goal] == pytest.approx(1.0)  # every winning fact known: the goal is its choice
        after_message = tr.choice_probs(extra, doubt=True)[goal]
        assert (after_message == pytest.approx(1.0)) if believed else (0 < after_message < 1)
