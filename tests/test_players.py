"""Player specs: `name`, `name:ARG` and `name?options` all reach the registered factory."""

import pytest

from engine.errors import LabError
from engine.players import _lookup

TABLE = {"local": (lambda arg: f"built({arg})", "a model"), "planner": (lambda arg: f"planner({arg})", "a planner")}


@pytest.mark.parametrize(
    ("spec", "built", "name"),
    [
        ("local", "built()", "local"),
        ("local:models/x", "built(models/x)", "local"),
        ("local:?temperature=0", "built(?temperature=0)", "local"),
        ("local?temperature=0&max_tokens=320", "built(?temperature=0&max_tokens=320)", "local"),
    ],
)
def test_specs_reach_the_factory(spec, built, name):
    assert _lookup(spec, TABLE, "persuader") == (built, name)


def test_unknown_spec_lists_the_known_players():
    with pytest.raises(LabError, match=r"unknown persuader 'nope\?x=1'.*local \(a model\)"):
        _lookup("nope?x=1", TABLE, "persuader")
