"""The trajectory reader: valid files round-trip, every bad line is named by file and line."""

from __future__ import annotations

import json

import pytest

from engine.game.episode import play
from engine.pipeline.trajectories import TrajectoryError, read_trajectories, validate_trajectory
from engine.players.persuaders.baselines import RevealAll
from engine.players.targets.rational import RationalTarget


@pytest.fixture
def traj(business) -> dict:
    return play(business, RevealAll(), RationalTarget(), seed=3).to_trajectory()


def _write(path, rows) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def test_round_trip_and_scenario_id(tmp_path, traj):
    by_id = dict(traj)
    by_id.pop("scenario")
    by_id["scenario_id"] = "business_vacation"
    by_id["id"] = "second"
    path = tmp_path / "t.jsonl"
    _write(path, [traj, "", by_id])
    got = list(read_trajectories(path))
    assert [g.id for g in got] == [traj["id"], "second"]
    assert got[1].scenario.id == "business_vacation"
    assert got[1].to_trajectory()["scenario"]["effects"] == traj["scenario"]["effects"]
    assert "scenario_id" not in got[1].to_trajectory()
    assert got[0].to_trajectory()["turns"] == traj["turns"]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda t: t.pop("id"), ": id: missing"),
        (lambda t: t.update(condition="sideways"), "condition"),
        (lambda t: t["turns"][0].update(moves=["disclose Z.cost"]), "turns[0].moves[0]"),
        (lambda t: t["turns"][0].update(index=5), "turns[0].index"),
        (lambda t: t["outcome"].update(success=not t["outcome"]["success"]), "outcome.success"),
        (lambda t: t.update(scenario_id="nope", scenario=None), "scenario"),
        (lambda t: t["turns"][0].update(belief={"preferences": {"cost": {"like": 2}}}), "belief.preferences.cost.like"),
    ],
)
def test_bad_line_named(tmp_path, traj, mutate, field):
    bad = json.loads(json.dumps(traj))
    if field == "scenario":
        bad.pop("scenario")
        bad["scenario_id"] = "nope"
    else:
        mutate(bad)
    path = tmp_path / "t.jsonl"
    _write(path, [traj, bad])
    with pytest.raises(TrajectoryError) as info:
        list(read_trajectories(path))
    assert f"{path}:2" in str(info.value)
    assert field in str(info.value)


def test_skip_bad_counts(tmp_path, traj):
    path = tmp_path / "t.jsonl"
    _write(path, ["{not json", traj, json.dumps([1, 2])])
    reader = read_trajectories(path, skip_bad=True)
    got = list(reader)
    assert len(got) == 1 and reader.report.good == 1
    assert [line for line, _ in reader.bad] == [1, 3]
    assert "not valid JSON" in reader.bad[0][1]


def test_malformed_json_stops_naming_the_line(tmp_path, traj):
    path = tmp_path / "t.jsonl"
    _write(path, [traj, "{not json"])
    with pytest.raises(TrajectoryError, match=rf"{path}:2: not valid JSON"):
        list(read_trajectories(path))


def test_missing_file(tmp_path):
    with pytest.raises(TrajectoryError, match="no such file"):
        list(read_trajectories(tmp_path / "none.jsonl"))


def test_validate_one(traj):
    assert validate_trajectory(traj).outcome.choice == traj["outcome"]["choice"]
