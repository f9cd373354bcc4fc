"""MindGames built in: the shipped scenario set and published figures, the replay of every recorded game through the
rational target, and the `mindgames` rule set in the episode loop.

Tests that need the raw records skip when ../shared/mindgames is absent (the lab never reads it at run time).
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from engine.cli import main
from engine.errors import LabError
from engine.game.episode import play
from engine.game.interfaces import Persuader, PersuaderTurn, PersuaderView
from engine.game.mindgames import (
    PUBLISHED_PATH,
    REJECTED_REPLY,
    SCENARIOS_PATH,
    SHARED_DIR,
    GameRecord,
    MindGamesError,
    attribute_ids,
    disclosure_moves,
    import_scenarios,
    load_published,
    published_rates,
    read_games,
    read_stories,
    to_scenario,
)
from engine.game.moves import disclose, parse_moves
from engine.game.scenario import Scenario, load_file
from engine.pipeline.evaluation import EvalConfig, evaluate, run_episodes
from engine.pipeline.leaderboard import Entry, build, markdown
from engine.pipeline.trajectories import GenerationPlan, generate_trajectories
from engine.players.targets.rational import RationalTarget

GAMES = SHARED_DIR / "games.csv"
needs_records = pytest.mark.skipif(not GAMES.exists(), reason="MindGames records (../shared/mindgames) absent")


@pytest.fixture(scope="module")
def records() -> list[GameRecord]:
    return read_games(GAMES)


# ----- the shipped files -------------------------------------------------------------------------------------------
def test_shipped_set_is_200_mindgames_games_that_start_on_a_unique_choice():
    scenarios = load_file(SCENARIOS_PATH)  # validates each: unique initial choice, not the goal, winnable
    assert len(scenarios) == 200
    assert [s.id for s in scenarios] == [f"mindgames-{t:03d}" for t in range(200)]
    for s in scenarios:
        assert (len(s.proposals), len(s.attributes), len(s.target_knows), s.max_turns) == (3, 3, 5, 8)
        assert s.target_knows_count == 5  # MindGames' rules make the number public (4 of the 9 facts hidden)
        assert s.full_knowledge_best == "other"  # its generator: told every fact, the target picks a third proposal


@needs_records
def test_shipped_set_equals_a_fresh_import_of_the_records():
    shipped = [s.to_dict() for s in load_file(SCENARIOS_PATH)]
    assert [s.to_dict() for s in import_scenarios(GAMES)] == shipped


@needs_records
def test_shipped_published_figures_equal_those_recomputed_from_the_records(records):
    shipped = json.loads(PUBLISHED_PATH.read_text(encoding="utf-8"))["rows"]
    assert shipped == published_rates(records)
    by = {(r["label"], r["condition"]): (r["successes"], r["n"]) for r in shipped}
    # the table in ../shared/mindgames/README.md
    assert by[("humans", "hidden")] == (59, 202) and by[("o1-preview", "revealed")] == (157, 200)
    assert by[("random disclosures", "hidden")] == (64, 1000) and ("random disclosures", "revealed") not in by


def test_published_figures_load_with_intervals_and_unknown_names_fail():
    rows = load_published("mindgames")["rows"]
    gpt = next(r for r in rows if r["label"] == "GPT-4o" and r["condition"] == "hidden")
    assert gpt["rate"] == pytest.approx(18 / 200) and gpt["ci95"][0] < gpt["rate"] < gpt["ci95"][1]
    with pytest.raises(Exception, match="unknown figures 'nope'"):
        load_published("nope")


# ----- replaying the records -------------------------------------------------------------------------------------
def _replay(record: GameRecord, scenario: Scenario) -> str:
    """The final choice of the lab's rational target given the recorded disclosures, settled when MindGames' code
    settled it (its `choose_proposal` runs only when a game is loaded and at the end):
    - games with a human persuader ran on its web server, which loads the game at every message: the target
      settles its choice after each message (one `respond` per turn);
    - LLM and random-baseline games ran in memory and settled only at the end, except a run resumed from its file,
      which settled once on loading and recorded that choice as `initial_choice`: the disclosures before the first
      point at which the target's choice is the recorded one go in one message, the rest in another.
    """
    turns = [disclosure_moves(record, t) for t in range(len(record.disclosures))]
    if record.persuader == "human":
        target = _target(scenario)
        for i, moves in enumerate(turns, 1):
            target.respond("", moves, i)
        return target.choose()[0]
    for k in range(len(turns) + 1):
        target = _target(scenario)
        if k:
            target.respond("", [m for moves in turns[:k] for m in moves], 1)
        if target.favourite == record.initial_choice:
            target.respond("", [m for moves in turns[k:] for m in moves], 2)
            return target.choose()[0]
    raise AssertionError(f"games.csv:{record.line}: the recorded initial choice is never the target's")


def _target(scenario: Scenario) -> RationalTarget:
    target = RationalTarget()
    target.rules = "mindgames"
    target.start(scenario, "cooperative", 0)
    return target


@needs_records
def test_replay_of_every_recorded_game_matches_its_final_choice(records):
    stories = read_stories(SHARED_DIR / "stories.json")
    scenarios: dict[str, Scenario] = {}
    misses = []
    for r in records:
        scenario = scenarios.get(r.game_key) or scenarios.setdefault(r.game_key, to_scenario(r, stories, "replay"))
        if _replay(r, scenario) != r.final_choice:
            misses.append(r.line)
    assert len(records) == 2681
    assert misses == []


def test_recorded_disclosures_become_true_disclose_moves():
    record = GameRecord(
        line=2, persuader="gpt-4o", condition="hidden", participant="0", trial=0, story="generic",
        payoff_id="p", proposals=("A", "B", "C"), attributes=("x", "y", "z"),
        utilities={"A": {"x": 1, "y": 1, "z": -1}, "B": {"x": 1, "y": 0, "z": 0}, "C": {"x": 1, "y": 1, "z": 0}},
        hidden={"A": ["x", "y", "z"], "B": [], "C": ["x", "y"]}, coefficients={"x": 1, "y": 1, "z": 1},
        persuader_choice="A", initial_choice="B", final_choice="A", disclosures=[{"A": {"x": 1}}, {}],
        turn_limit=8,
    )
    scenario = to_scenario(record, {}, "t")
    assert disclosure_moves(record, 0) == [disclose(("A", "x"), 1)]
    assert disclosure_moves(record, 1) == []
    assert ("A", "x") not in scenario.target_knows and len(scenario.target_knows) == 4
    assert scenario.goal == "A" and scenario.story


def test_attribute_ids_are_first_words_unless_two_share_one():
    assert attribute_ids(["safety and control", "public trust"]) == {"safety and control": "safety",
                                                                     "public trust": "public"}
    assert attribute_ids(["student choice", "student achievement", "cost"]) == {
        "student choice": "student_choice", "student achievement": "student_achievement", "cost": "cost"}


def test_a_file_that_is_not_games_csv_is_one_clear_error(tmp_path):
    bad = tmp_path / "games.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(MindGamesError, match="not a MindGames games.csv"):
        read_games(bad)


@needs_records
def test_import_command_writes_the_set(tmp_path, capsys):
    out, pub = tmp_path / "mg.jsonl", tmp_path / "pub.json"
    assert main(["scenarios", "import-mindgames", str(GAMES), "--out", str(out), "--published", str(pub)]) == 0
    assert len(load_file(out)) == 200
    assert json.loads(pub.read_text(encoding="utf-8"))["rows"][0]["label"] == "humans"
    blind = tmp_path / "blind.jsonl"
    assert main(["scenarios", "import-mindgames", str(GAMES), "--out", str(blind), "--no-design"]) == 0
    plain = [s.to_dict() for s in load_file(blind)]
    assert [dict(s, full_knowledge_best="other") for s in plain] == [s.to_dict() for s in load_file(out)]


def test_import_command_with_a_missing_csv_says_so(tmp_path, capsys):
    assert main(["scenarios", "import-mindgames", str(tmp_path / "none.csv"), "--out", str(tmp_path / "x.jsonl")]) != 0
    assert "no such file" in capsys.readouterr().err


# ----- the mindgames rule set ------------------------------------------------------------------------------------
class Scripted(Persuader):
    """Plays the given moves, one list a turn, then appeals."""

    name = "scripted"

    def __init__(self, turns: list[str]) -> None:
        self.turns = turns

    def act(self, view: PersuaderView) -> PersuaderTurn:
        text = self.turns[view.turn - 1] if view.turn <= len(self.turns) else "appeal"
        return PersuaderTurn(message=text, moves=parse_moves(text, view.scenario))


def _game(turns: list[str], rules: str):
    scenario = load_file(SCENARIOS_PATH)[0]  # knows A.public, B.public, B.safety, C.public, C.safety; goal A
    return scenario, play(scenario, Scripted(turns), RationalTarget(), rules=rules)


def test_mindgames_rules_play_every_message_despite_conclude():
    _, lab = _game(["conclude"], "lab")
    _, mg = _game(["conclude"], "mindgames")
    assert len(lab.turns) == 1 and len(mg.turns) == 8
    assert (mg.rules, lab.rules) == ("mindgames", "lab") and "rules" not in mg.meta


def test_mindgames_rules_reject_a_message_with_a_false_claim_whole():
    scenario, mg = _game(["disclose A.development=+1; disclose C.development=-1"], "mindgames")
    first = mg.turns[0]
    assert first.target_reply == REJECTED_REPLY and first.statements == []
    assert "A.development" not in first.target_state["knows"]  # the true claim was not delivered either
    assert len(first.refused) == 1
    _, lab = _game(["disclose A.development=+1; disclose C.development=-1"], "lab")
    assert "A.development" in lab.turns[0].target_state["knows"]


def test_mindgames_target_tells_all_it_knows_of_a_proposal_and_ranks_every_proposal():
    _, mg = _game(["ask_knowledge B.safety; ask_choice"], "mindgames")
    said = [s.text() for s in mg.turns[0].statements]
    assert said[:3] == ["knows B.safety 1", "knows B.development 0", "knows B.public 1"]
    # every preference is -1; by what it knows A = -1 (public +1), B = -1 (safety +1), C = -1 + 1 = 0
    assert said[3] == "choice C C>A=B"
    assert "I prefer Proposal C over Proposal A and Proposal B" in mg.turns[0].target_reply
    _, lab = _game(["ask_knowledge B.safety; ask_choice"], "lab")
    assert [s.text() for s in lab.turns[0].statements] == ["knows B.safety 1", "choice C"]


def test_unknown_rules_are_refused():
    scenario = load_file(SCENARIOS_PATH)[0]
    with pytest.raises(Exception, match="unknown rules 'chess'"):
        play(scenario, Scripted([]), RationalTarget(), rules="chess")


def test_an_evaluation_run_carries_its_rules(store):
    config = EvalConfig(model="greedy", scenarios=str(SCENARIOS_PATH), num_eval=2, rules="mindgames")
    run = evaluate(store, config, name="mg")
    episodes = run_episodes(store, run.run["id"])
    assert [len(e.turns) for e in episodes] == [8, 8]  # every message played
    assert [e.rules for e in episodes] == ["mindgames", "mindgames"]  # stored with each game, read back
    assert json.loads(run.run["config_json"])["rules"] == "mindgames"
    with pytest.raises(LabError, match="rules: 'mindgames' -> 'lab'"):
        evaluate(store, replace(config, rules="lab"), name="mg")


def test_generation_plays_under_the_plans_rules():
    plan = GenerationPlan(n=2, persuaders=[("greedy", 1.0)], scenarios=load_file(SCENARIOS_PATH)[:2], rules="mindgames")
    assert [len(e.turns) for e in generate_trajectories(plan)] == [8, 8]


# ----- published rows beside a run ------------------------------------------------------------------------------
def test_leaderboard_sets_published_rows_beside_runs():
    scenario = replace(load_file(SCENARIOS_PATH)[0], max_turns=2)
    episode = play(scenario, Scripted(["disclose A.development"]), RationalTarget(), rules="mindgames")
    entry = Entry("scripted-hidden", "run", "scripted", "hidden", [episode])
    board = build([entry], published=load_published("mindgames"))
    text = markdown(board)
    assert "Published figures" in text and "| GPT-4o | hidden | 200 | 9%" in text
    assert board["published"]["rows"][0]["label"] == "humans"

