"""The scenario model: loading, validation messages that name where, and the library."""

from __future__ import annotations

import json

import pytest

from engine.game.scenario import DEFAULT_DIR, Scenario, ScenarioError, ScenarioLibrary, load_file, load_path


def small(**over) -> dict:
    data = {
        "id": "tiny",
        "proposals": [{"id": "A", "name": "Alpha"}, {"id": "B", "name": "Beta"}],
        "attributes": [{"id": "cost", "name": "cost"}, {"id": "fun", "name": "fun"}],
        "effects": {"A": {"cost": -1, "fun": 1}, "B": {"cost": 0, "fun": 1}},
        "preferences": {"cost": -1, "fun": 1},
        "target_knows": ["B.fun"],
        "goal": "A",
    }
    data.update(over)
    return data


def test_hand_written_scenarios_load_and_are_interesting(library):
    found = library.all()
    hand = [s for sid, s in found.items() if not sid.startswith("heldout-")]
    assert len(hand) >= 6
    assert len({s.domain for s in hand}) >= 6
    assert "business_vacation" in found
    for s in hand:
        assert s.story and len(s.story) > 60, s.id


def test_heldout_set_has_100_scenarios():
    assert len(load_file(ScenarioLibrary().root / "heldout.jsonl")) == 100


def test_round_trip_through_dict(business):
    again = Scenario.from_dict(business.to_dict())
    assert again == business
    assert "target_knows_count" not in business.to_dict()  # not public unless a file says so
    counted = Scenario.from_dict(small(target_knows_count=1))
    assert counted.target_knows_count == 1 and Scenario.from_dict(counted.to_dict()) == counted


@pytest.mark.parametrize(
    "change, message",
    [
        ({"goal": "Z"}, "goal 'Z' is not a proposal"),
        ({"effects": {"A": {"cost": -1, "fun": 1}, "Q": {"cost": 0, "fun": 1}}}, "unknown proposal 'Q'"),
        ({"effects": {"A": {"cost": -1, "fun": 2}, "B": {"cost": 0, "fun": 1}}}, r"effects\.A\.fun must be -1, 0 or \+1"),
        ({"preferences": {"cost": -1, "speed": 1}}, "unknown attribute 'speed'"),
        ({"target_knows": ["A.speed"]}, "unknown fact 'A.speed'"),
        ({"goal": "B"}, "the target already chooses the goal"),
        ({"target_knows": ["A.fun", "B.fun"]}, "initial choice is tied between A, B"),
        ({"effects": {"A": {"cost": 1, "fun": -1}, "B": {"cost": -1, "fun": 1}}}, "cannot be won"),
        ({"proposals": [{"id": "A"}]}, "need 2 to 5"),
        ({"target_knows_count": 2}, "target_knows_count is 2 but target_knows lists 1 fact"),
        ({"target_knows_count": 5}, "target_knows_count must be an integer from 0 to 4"),
        ({"target_knows_count": "1"}, "target_knows_count must be an integer"),
        ({"full_knowledge_best": "rival"}, "full_knowledge_best must be one of 'other'"),
        ({"full_knowledge_best": "other"}, "knowing every fact, the target's values are A=\\+2, B=\\+1"),
    ],
)
def test_bad_scenarios_name_the_field(change, message):
    with pytest.raises(ScenarioError, match=message) as err:
        Scenario.from_dict(small(**change), "file.yaml")
    assert "file.yaml" in str(err.value)


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("id: x\nproposals: [\n  {id: A\n")
    with pytest.raises(ScenarioError, match=r"bad\.yaml:\d+: not valid YAML"):
        load_file(path)


def test_jsonl_errors_name_file_and_line(tmp_path):
    path = tmp_path / "test_scenarios.jsonl"
    path.write_text(json.dumps(small()) + "\n" + json.dumps(small(id="t2", goal="Q")) + "\n")
    with pytest.raises(ScenarioError, match=r"test_scenarios\.jsonl:2 \(scenario 't2'\): goal 'Q'"):
        load_file(path)
    path.write_text(json.dumps(small()) + "\n{not json\n")
    with pytest.raises(ScenarioError, match=r"test_scenarios\.jsonl:2: not valid JSON"):
        load_file(path)



def test_yaml_with_bytes_that_are_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"id: tiny\ntitle: Caf\xe9 choice\n")
    with pytest.raises(ScenarioError, match=r"latin1\.yaml:2: not UTF-8 \(byte 0xe9\)"):
        load_file(path)


def test_yaml_with_a_duplicate_key_is_refused_by_line(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("id: tiny\ngoal: A\nproposals: [{id: A}, {id: B}]\ngoal: B\n")
    with pytest.raises(ScenarioError, match=r"dup\.yaml:4: not valid YAML \(duplicate key 'goal' \(first on line 2\)"):
        load_file(path)


def test_an_unknown_top_level_key_is_refused_not_ignored(tmp_path):
    data = small()
    data["preference"] = data.pop("preferences")  # a typo would otherwise leave preferences empty
    path = tmp_path / "typo.yaml"
    path.write_text(json.dumps(data))
    with pytest.raises(ScenarioError, match=r"typo\.yaml: unknown key\(s\) preference \(known: "):
        load_file(path)

def test_directory_and_library_lookup(tmp_path):
    (tmp_path / "one.yaml").write_text(json.dumps(small()))
    (tmp_path / "two.yaml").write_text(json.dumps([small(id="t2"), small(id="t3")]))
    assert [s.id for s in load_path(tmp_path)] == ["tiny", "t2", "t3"]
    lib = ScenarioLibrary(tmp_path)
    assert lib.get("t3").id == "t3"
    assert lib.get(f"{tmp_path / 'two.yaml'}#t2").id == "t2"
    with pytest.raises(ScenarioError, match="holds 2 scenarios"):
        lib.get(str(tmp_path / "two.yaml"))
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'"):
        lib.get("nope")


def test_fact_sentence_reads_naturally(business):
    assert business.fact_sentence(("A", "cost")) == "Lisbon costs less"


def test_a_tied_start_is_refused_by_file_and_line_and_every_shipped_set_starts_unique(tmp_path):
    path = tmp_path / "tied.jsonl"
    path.write_text(json.dumps(small()) + "\n" + json.dumps(small(id="t2", target_knows=["A.fun", "B.fun"])) + "\n")
    with pytest.raises(ScenarioError, match=r"tied\.jsonl:2 \(scenario 't2'\): the target's initial choice is tied"):
        load_file(path)
    assert len(load_path(DEFAULT_DIR)) >= 7  # loading validates: every hand-written scenario starts unique
    assert len(load_file(DEFAULT_DIR / "heldout.jsonl")) == 100
