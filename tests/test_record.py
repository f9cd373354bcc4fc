"""The game record: import then export keeps every field, old spellings still read, errors name file:line: field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.cli import main
from engine.game.episode import play
from engine.game.moves import disclose
from engine.game.record import Episode, Refusal, Turn, json_schema_text
from engine.players.persuaders.baselines import RevealAll
from engine.players.targets.rational import RationalTarget
from engine.store import MIGRATIONS, Store, StoreListener, session_episode, session_trajectory

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "docs" / "trajectory.schema.json"


@pytest.fixture
def rich_line(business) -> dict:
    """A played game whose turns carry every optional field a model-backed game can leave behind."""
    line = play(business, RevealAll(), RationalTarget(), personality="stubborn", seed=7).to_trajectory()
    first, second = line["turns"][0], line["turns"][1]
    first.update(
        belief={"preferences": {"cost": {"like": 0.1, "neutral": 0.2, "dislike": 0.7}}, "predicted_choice": "B",
                "p_goal": 0.3, "note": "kept although not in the schema"},
        reasoning="She dislikes cost; Lisbon is cheaper.",
        counterfactual={"move": "disclose A.cost", "p_goal_before": 0.3, "p_goal_after": 0.6, "predicted_choice": "A",
                        "alternatives": [{"move": "ask_choice", "p_goal": 0.35}]},
        refused=[{"move": "disclose B.cost=-1", "true_value": 1}],
        usage={"input_tokens": 812, "output_tokens": 64, "cost_usd": 0.0021, "model": "gpt-4o", "calls": 2},
        target_usage={"input_tokens": 300, "output_tokens": 20, "cost_usd": 0.0004, "model": "claude-sonnet-4-6"},
        latency_ms=1234.5,
    )
    second.update(raw="MOVES: teleport\nMESSAGE: trust me", parse_ok=False, parse_error="unknown move 'teleport'")
    line["outcome"].update(violations=1, parse_failures=1, mental_state_appeals=2)
    line = Episode.model_validate(line).to_trajectory()
    defaults = Turn(index=1, message="", target_reply="")
    unset = [name for name in Turn.model_fields if getattr(Turn.model_validate(line["turns"][0]), name) ==
             getattr(defaults, name) and getattr(Turn.model_validate(line["turns"][1]), name) == getattr(defaults, name)]
    assert unset == [], "give every turn field a value here, so that the round trip below covers it"
    return line


def test_import_then_export_round_trips_every_field(tmp_path, rich_line, capsys):
    src, out, db = tmp_path / "in.jsonl", tmp_path / "out.jsonl", str(tmp_path / "s.db")
    src.write_text(json.dumps(rich_line) + "\n")
    assert main(["trajectories", "import", str(src), "--db", db]) == 0
    assert main(["sessions", "export", rich_line["id"], "--db", db, "--format", "jsonl", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == rich_line
    store = Store(db)
    assert session_trajectory(store, rich_line["id"]) == rich_line
    assert store.get_session(rich_line["id"])["kind"] == "import"
    turn = store.turns(rich_line["id"])[0]
    assert json.loads(turn["usage_json"])["input_tokens"] == 812 and turn["latency_ms"] == 1234.5
    store.close()


def test_old_spellings_still_read(tmp_path, business, rich_line):
    old = json.loads(json.dumps(rich_line))
    old["turns"][0]["refused"] = ["disclose B.cost=-1 contradicts the fact B.cost=+1"]
    for key in ("index", "raw", "parse_ok", "parse_error", "usage", "target_usage", "latency_ms", "statements"):
        old["turns"][2].pop(key)
    old.pop("scenario")
    old["scenario_id"] = business.id
    old["persuader"] = "reveal-all"
    del old["outcome"]["turns"]
    ep = Episode.model_validate(old)
    assert ep.turns[0].refused == [Refusal(move=disclose(("B", "cost"), stated=-1), true_value=1)]
    line = ep.to_trajectory()
    assert line["turns"][0]["refused"] == [{"move": "disclose B.cost=-1", "true_value": 1}]
    assert line["scenario"] == business.to_dict() and line["persuader"] == {"name": "reveal-all"}
    assert line["outcome"]["turns"] == len(line["turns"]) and line["turns"][2]["index"] == 3


def test_the_rules_a_game_was_played_under_travel_with_it(tmp_path, business, capsys):
    store = Store(tmp_path / "played.db")
    mg = play(business, RevealAll(), RationalTarget(), rules="mindgames", listeners=[StoreListener(store)])
    assert session_episode(store, mg.id).rules == "mindgames" and "rules" not in session_episode(store, mg.id).meta
    store.close()
    line = mg.to_trajectory()
    assert line["rules"] == "mindgames"
    src, out, db = tmp_path / "in.jsonl", tmp_path / "out.jsonl", str(tmp_path / "s.db")
    src.write_text(json.dumps(line) + "\n")
    assert main(["trajectories", "import", str(src), "--db", db]) == 0
    assert main(["sessions", "export", mg.id, "--db", db, "--format", "jsonl", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == line
    older = {key: value for key, value in line.items() if key != "rules"}  # a file written before the field
    assert Episode.model_validate(older).rules == "lab"
    with pytest.raises(ValidationError, match="rules"):
        Episode.model_validate({**line, "rules": "chess"})


def test_a_store_from_before_the_rules_column_moves_them_out_of_meta(tmp_path, business, monkeypatch):
    import engine.store

    path = tmp_path / "old.db"
    monkeypatch.setattr(engine.store, "MIGRATIONS", MIGRATIONS[:3])
    old = Store(path)
    for sid, meta in (("mg", {"rules": "mindgames", "concluded": False}), ("lab", {"concluded": True})):
        old.db["sessions"].insert({  # the row as the code before the field wrote it: rules in the meta, if at all
            "id": sid, "kind": "play", "status": "finished", "scenario_id": business.id,
            "scenario_json": json.dumps(business.to_dict()), "persuader": "reveal-all", "target": "rational",
            "personality": "cooperative", "condition": "hidden", "seed": 0, "choice": business.goal, "success": 1,
            "n_turns": 0, "meta_json": json.dumps(meta), "created_at": "2026-01-01",
        })
    old.close()
    monkeypatch.undo()
    store = Store(path)
    mg, lab = session_episode(store, "mg"), session_episode(store, "lab")
    assert (mg.rules, mg.meta) == ("mindgames", {"concluded": False})
    assert (lab.rules, lab.meta) == ("lab", {"concluded": True})
    store.close()


def test_bad_line_names_file_line_and_field_path(tmp_path, rich_line, capsys):
    bad = json.loads(json.dumps(rich_line))
    bad["turns"][1]["belief"] = {"preferences": {"cost": {"like": 1.5}}}
    wrong_fact = json.loads(json.dumps(rich_line))
    wrong_fact["turns"][0]["refused"] = [{"move": "disclose Z.cost=+1", "true_value": 1}]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in (rich_line, bad, wrong_fact)) + "\n")
    assert main(["trajectories", "validate", str(path)]) == 1
    out = capsys.readouterr().out.replace("\n", "")
    assert f"{path}:2: turns[1].belief.preferences.cost.like: Input should be less than or equal to 1" in out
    assert f"{path}:3: turns[0].refused[0].move: disclose: unknown fact 'Z.cost'" in out


def test_schema_command_prints_the_committed_file(capsys):
    assert main(["trajectories", "schema"]) == 0
    printed = capsys.readouterr().out
    assert printed == json_schema_text()
    assert SCHEMA_FILE.read_text(encoding="utf-8") == printed, (
        "docs/trajectory.schema.json is stale: regenerate it with `ptom-lab trajectories schema > docs/trajectory.schema.json`"
    )
    schema = json.loads(printed)
    assert {"id", "persuader", "target", "condition"} <= set(schema["required"])
    assert schema["anyOf"] == [{"required": ["scenario"]}, {"required": ["scenario_id"]}]
    assert "refused" in schema["$defs"]["Turn"]["properties"] and "kind" not in schema["properties"]
