"""Human players (`me`) driven by a scripted `ask`, as the TUI drives them."""

from __future__ import annotations

from dataclasses import replace

from engine.errors import LabError
from engine.game.episode import play
from engine.game.interfaces import Statement
from engine.game.moves import Move
from engine.players.persuaders.baselines import RevealAll
from engine.players.persuaders.human import HumanPersuader, split_human_message
from engine.players.registry import make_persuader, make_target
from engine.players.targets.human import HumanTarget
from engine.players.targets.rational import RationalTarget


def script(*answers: str):
    prompts: list[str] = []
    queue = list(answers)

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        if not queue:
            raise LabError("no more input on the terminal: the game stops here")
        return queue.pop(0)

    return ask, prompts


def test_human_target_sees_its_brief_and_states_choices(business):
    ask, prompts = script("Cheaper sounds good. PREFERS: cost -1 CHOICE: B", "Fine.", "banana", "b")
    episode = play(replace(business, max_turns=2), RevealAll(), HumanTarget(ask), personality="stubborn")
    assert episode.status == "finished" and episode.outcome.choice == "B"
    first = prompts[0]
    assert "== Your brief ==" in first and "stubborn" in first and business.target_role in first
    for fact in business.target_knows:
        assert business.fact_sentence(fact) in first
    assert "stated as facts:" in first and "== Your brief ==" not in prompts[1]
    turn = episode.turns[0]
    assert turn.target_reply == "Cheaper sounds good." and Statement("preference", "cost", -1) in turn.statements
    assert "'banana' is not one of A, B, C" in prompts[3]
    assert episode.turns[-1].target_state["favourite"] == "B"


def test_human_target_brief_grows_with_disclosures(business):
    target = HumanTarget(lambda _p: "ok")
    target.start(business, "open", 0)
    new = next(f for f in business.facts if f not in business.target_knows)
    assert business.fact_sentence(new) not in target.brief()
    target.respond("Look.", [Move("disclose", fact=new)], 1)
    assert business.fact_sentence(new) in target.brief()


def test_human_persuader_moves_syntax_and_retry_on_a_bad_move(business):
    ask, prompts = script("[disclose B.cost; teleport] hi", "[disclose B.cost; ask_preference cost] B is cheap. Cost?", "[conclude] Decide!")
    episode = play(replace(business, max_turns=3), HumanPersuader(ask), RationalTarget(), condition="revealed")
    assert episode.status == "finished" and len(episode.turns) == 2
    assert "== Your brief ==" in prompts[0] and "The target's preferences" in prompts[0]
    assert "unknown move 'teleport'" in prompts[1]
    assert [m.text() for m in episode.turns[0].moves] == ["disclose B.cost", "ask_preference cost"]
    assert episode.turns[0].target_reply in prompts[2]  # the target's answer is shown before the next message


def test_hidden_brief_has_no_secrets_and_plain_text_is_an_appeal(business):
    ask, prompts = script("Just pick B please.", "[conclude] now")
    play(replace(business, max_turns=2), HumanPersuader(ask), RationalTarget(), condition="hidden")
    assert "The target's preferences" not in prompts[0]
    turn = split_human_message("Just pick B please.", business)
    assert turn.moves == [] and turn.message == "Just pick B please."


def test_end_of_input_stops_the_game_cleanly(business):
    ask, _ = script()
    episode = play(business, HumanPersuader(ask), RationalTarget())
    assert episode.status == "errored" and "no more input" in episode.error


def test_me_is_registered_for_both_sides():
    assert isinstance(make_target("me"), HumanTarget) and isinstance(make_persuader("me"), HumanPersuader)
