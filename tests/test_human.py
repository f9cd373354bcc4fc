"""Human players (`me`) driven by a scripted `ask`, as the TUI drives them."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace

import pytest

from engine.errors import LabError
from engine.game.episode import play
from engine.game.interfaces import Persuader, PersuaderTurn, PersuaderView, Statement
from engine.game.moves import Move, parse_move
from engine.players.persuaders.baselines import RevealAll
from engine.players.persuaders.human import HumanPersuader, split_human_message
from engine.players.registry import make_persuader, make_target
from engine.players.targets.answers import AnswerError, questions_for, read_reply
from engine.players.targets.human import HumanTarget
from engine.players.targets.rational import RationalTarget
from engine.store import Store, session_episode


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
    assert turn.target_reply.startswith("Cheaper sounds good. ") and Statement("preference", "cost", -1) in turn.statements
    assert "Not taken: 'banana'" in prompts[3] and "1) A = " in prompts[3]
    assert episode.turns[-1].target_state["favourite"] == "B"


def asking(*moves: str) -> PersuaderTurn:
    """A scripted persuader turn with these moves."""
    return PersuaderTurn("Tell me.", [parse_move(m) for m in moves])


class Scripted(Persuader):
    """Plays the given turns, then concludes."""

    name = "scripted"

    def __init__(self, *turns: PersuaderTurn) -> None:
        self.turns = list(turns)

    def act(self, view: PersuaderView) -> PersuaderTurn:
        return self.turns.pop(0) if self.turns else PersuaderTurn("Decide.", [parse_move("conclude")])


def test_plain_words_then_each_missing_answer_is_asked_with_the_reason(business):
    ask, prompts = script("I care most about cost, and I'd pick B", "3", "yes", "Berlin, I think", "Fine.", "2")
    turn = asking("ask_preference cost", "ask_knowledge A.cost", "ask_choice")
    episode = play(business, Scripted(turn), HumanTarget(ask))
    assert episode.status == "finished" and episode.outcome.choice == "B"
    assert "you are asked how you feel about cost; whether you know A.cost; which option you favour" in prompts[0]
    assert "asked how you feel about cost; your reply did not say" in prompts[1]
    assert "cost: 1) like 2) don't care 3) dislike" in prompts[1]
    assert "know A.cost?: 1) yes 2) no" in prompts[2] and "3) C = " in prompts[3]
    first = episode.turns[0]
    # the persuader reads the answers too, in words after the player's own
    assert first.target_reply.startswith("I care most about cost, and I'd pick B. ") and "Berlin" in first.target_reply
    assert first.statements == [Statement("preference", "cost", -1), Statement("knows", "A.cost", 1),
                                 Statement("choice", "B")]


def test_an_invalid_answer_is_refused_with_the_reason_and_asked_again(business):
    ask, prompts = script("PREFERS: luxury +7; CHOICE: Z", "PREFERS: cost +7", "Too dear. PREFERS: cost -1", "ok", "A")
    episode = play(business, Scripted(asking("ask_preference cost")), HumanTarget(ask))
    assert "Not taken: there is no attribute 'luxury' (attributes: cost," in prompts[1]
    assert "there is no proposal 'Z' (proposals: A, B, C)" in prompts[1]
    assert "'cost +7': a preference is +1 (like), 0 (don't care) or -1 (dislike)" in prompts[2]
    turn = episode.turns[0]
    assert turn.target_reply.startswith("Too dear. ") and turn.statements == [Statement("preference", "cost", -1)]
    assert episode.outcome.choice == "A" and episode.outcome.parse_failures == 0


def test_answer_rules(business):
    questions = questions_for([parse_move(m) for m in ("ask_preference cost", "ask_choice", "appeal")], business)
    assert [q.key for q in questions] == ["preference cost", "choice"]
    cost, choice = questions
    assert cost.numbered() == "cost: 1) like 2) don't care 3) dislike"
    assert [cost.pick(x) for x in ("1", "don't care", "-1", "I dislike it")] == [1, 0, -1, -1]
    assert [choice.pick(x) for x in ("2", "b", "the Alpine lodge")] == ["B", "B", "C"]
    with pytest.raises(AnswerError, match="'I don't like it' is not an answer to cost"):
        cost.pick("I don't like it")  # a negation is asked again, never guessed
    for bad in ("4", "A or B", "a cheap one", "not Berlin"):
        with pytest.raises(AnswerError, match="is not an answer to choice now: 1\\) A = "):
            choice.pick(bad)
    reply = read_reply("Fine.\nKNOWS: b.travel no; PREFERS: bonding +1, travel 0 CHOICE: c. Bye", business)
    assert reply.text == "Fine.\nBye" and reply.choice == "C"
    assert reply.answers == {"knows B.travel": 0, "preference bonding": 1, "preference travel": 0, "choice": "C"}
    assert reply.missing(questions) == [cost]
    assert read_reply("2", business, [cost]).answers == {"preference cost": 0}  # one question: a bare answer
    for bad, reason in (("PREFERS: cost", "PREFERS: what follows is not an answer"),
                        ("KNOWS: D.cost yes", "there is no fact 'D.cost'"), ("KNOWS: A.cost maybe", "KNOWS: what")):
        with pytest.raises(AnswerError, match=re.escape(reason)):
            read_reply(bad, business)
    assert cost.line(-1) == "PREFERS: cost -1" and choice.line("B") == "CHOICE: B"


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


def test_cli_asks_the_human_target_numbered_questions_on_stdin(tmp_path):
    """`ptom-lab play --human-agent me` in a terminal: words first, then each answer they left out as a numbered
    prompt; an invalid answer is refused with the reason and asked again."""
    db = tmp_path / "s.db"
    stdin = "\n".join(["PREFERS: luxury +7", "I care most about cost, and I'd pick B", "4", *["2"] * 12]) + "\n"
    out = subprocess.run([sys.executable, "-m", "engine", "play", "--db", str(db), "--persuader", "planner",
                          "--human-agent", "me", "--max-turns", "2"], input=stdin, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Not taken: there is no attribute 'luxury' (attributes: cost, bonding, travel)" in out.stdout
    assert "bonding: 1) like 2) don't care 3) dislike" in out.stdout
    assert "Not taken: '4' is not an answer to bonding: 1) like" in out.stdout
    assert "final choice: 1) A = Lisbon 2) B = Berlin 3) C = the Alpine lodge" in out.stdout
    (row,) = Store(str(db)).list_sessions()
    episode = session_episode(Store(str(db)), row["id"])
    assert episode.outcome.choice == "B" and episode.turns[0].target_reply.startswith("I care most about cost")
    assert Statement("preference", "bonding", 0) in episode.turns[0].statements


def test_end_of_input_stops_the_game_cleanly(business):
    ask, _ = script()
    episode = play(business, HumanPersuader(ask), RationalTarget())
    assert episode.status == "errored" and "no more input" in episode.error


def test_me_is_registered_for_both_sides():
    assert isinstance(make_target("me"), HumanTarget) and isinstance(make_persuader("me"), HumanPersuader)
