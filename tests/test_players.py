"""Player specs: `name`, `name:ARG` and `name?options` all reach the registered factory as one PlayerSpec."""

import pytest

from engine.errors import LabError
from engine.players import registry as players
from engine.players.spec import PlayerSpec


@pytest.fixture
def fake_kinds(monkeypatch):
    players._load_builtins()
    monkeypatch.setattr(players, "_PERSUADERS", {})
    monkeypatch.setitem(players._ROLES, "persuader", players._PERSUADERS)
    players.register_persuader("local", lambda spec: f"built({spec})", "a model", options=("temperature", "max_tokens"),
                               arguments=None)
    players.register_persuader("planner", lambda spec: f"planner({spec})", "a planner", options=("noise",),
                               arguments=("weak",))


@pytest.mark.parametrize(
    ("spec", "built"),
    [
        ("local", "built(local)"),
        ("local:models/x", "built(local:models/x)"),
        ("local:?temperature=0", "built(local?temperature=0)"),
        ("local?temperature=0&max_tokens=320", "built(local?temperature=0&max_tokens=320)"),
        ("planner:weak", "planner(planner:weak)"),
        ("planner:noise=0.3", "planner(planner?noise=0.3)"),  # the older settings form, in canonical form
    ],
)
def test_specs_reach_the_factory(fake_kinds, spec, built):
    assert players.make_persuader(spec) == built


def test_unknown_spec_lists_the_known_players(fake_kinds):
    with pytest.raises(LabError, match=r"unknown persuader 'nope\?x=1'.*local \(a model\)"):
        players.make_persuader("nope?x=1")


def test_options_and_arguments_are_checked_against_the_kind(fake_kinds):
    with pytest.raises(LabError, match=r"unknown option 'colour' for the persuader 'local' \(its options: temperature"):
        players.make_persuader("local?colour=red")
    with pytest.raises(LabError, match="takes the argument weak, not 'strong'"):
        players.make_persuader("planner:strong")
    assert players.canonical(PlayerSpec("planner", "", {"noise": "1"})) == PlayerSpec("planner", "", {"noise": "1"})
