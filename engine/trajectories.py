"""Trajectory files (DESIGN.md 2): the one reader and validator, used by import, data preparation and training.

A trajectory file is JSONL, one conversation a line. Every consumer goes through `read_trajectories`, so a bad
line is reported the same way everywhere: by file, line number and field. The `scenario` field may be a full
scenario or a `scenario_id` that resolves in `scenarios/`; either way the reader yields the full scenario dict,
so consumers never resolve ids themselves.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import LabError
from engine.game import CONDITIONS
from engine.jsonl import json_lines
from engine.moves import parse_move
from engine.scenario import Scenario, ScenarioLibrary

STATEMENT_KINDS = ("preference", "choice", "knows", "accepted", "declined")


class TrajectoryError(LabError):
    """A trajectory line that does not follow the schema; the message names `file:line` and the field."""


@dataclass
class ReadReport:
    """What a read found: good conversations counted, bad lines as (line number, reason)."""

    path: str
    good: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)

    @property
    def lines(self) -> int:
        return self.good + len(self.bad)


class TrajectoryReader:
    """An iterator over validated trajectories that keeps its `ReadReport` for the caller to read afterwards."""

    def __init__(self, path: str | Path, skip_bad: bool = False, library: ScenarioLibrary | None = None) -> None:
        self.path = Path(path)
        self.skip_bad = skip_bad
        self.library = library or ScenarioLibrary()
        self.report = ReadReport(str(path))
        self._it = self._read()

    @property
    def bad(self) -> list[tuple[int, str]]:
        return self.report.bad

    def __iter__(self) -> TrajectoryReader:
        return self

    def __next__(self) -> dict[str, Any]:
        return next(self._it)

    def _read(self) -> Iterator[dict[str, Any]]:
        if self.path.is_dir():
            raise TrajectoryError(f"{self.path}: is a directory, not a trajectory file")
        cache: dict[str, Scenario] = {}
        on_bad = (lambda n, why: self.report.bad.append((n, why))) if self.skip_bad else None
        for lineno, data in json_lines(self.path, TrajectoryError, on_bad):
            where = f"{self.path}:{lineno}"
            try:
                traj = validate_trajectory(data, where, self.library, cache)
            except TrajectoryError as exc:
                if not self.skip_bad:
                    raise
                self.report.bad.append((lineno, str(exc).removeprefix(f"{where}: ")))
                continue
            self.report.good += 1
            yield traj


def read_trajectories(
    path: str | Path, skip_bad: bool = False, library: ScenarioLibrary | None = None
) -> TrajectoryReader:
    """Validated trajectory dicts from a JSONL file, lazily.

    A bad line raises `TrajectoryError` naming `file:line` and the field; with `skip_bad` it is skipped and
    recorded in the returned reader's `.report.bad` (also `.bad`) as `(line, reason)`.
    """
    return TrajectoryReader(path, skip_bad, library)


def _fail(where: str, msg: str) -> TrajectoryError:
    return TrajectoryError(f"{where}: {msg}")


def _scenario(data: dict[str, Any], where: str, library: ScenarioLibrary, cache: dict[str, Scenario]) -> Scenario:
    raw = data.get("scenario")
    if raw is None and "scenario_id" in data:
        raw = data["scenario_id"]
    if raw is None:
        raise _fail(where, "missing field 'scenario' (a scenario, or 'scenario_id')")
    if isinstance(raw, str):
        if raw not in cache:
            try:
                cache[raw] = library.get(raw)
            except LabError as exc:
                raise _fail(where, f"scenario_id: {exc}") from None
        return cache[raw]
    if not isinstance(raw, dict):
        raise _fail(where, f"field 'scenario' must be a scenario object or id, got {type(raw).__name__}")
    try:
        # a conversation may have been played on any scenario, interesting or not: validate structure only
        return Scenario.from_dict({**raw, "check_interesting": False}, f"{where}: field 'scenario'")
    except LabError as exc:
        raise TrajectoryError(str(exc)) from None


def _probabilities(value: Any, where: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= float(value) <= 1.0:
        raise _fail(where, f"must be a probability from 0 to 1, got {value!r}")


def _belief(belief: Any, where: str, scenario: Scenario) -> None:
    if belief is None:
        return
    if not isinstance(belief, dict):
        raise _fail(where, f"must be an object, got {type(belief).__name__}")
    prefs = belief.get("preferences", {})
    if not isinstance(prefs, dict):
        raise _fail(f"{where}.preferences", "must map attribute -> {like, neutral, dislike}")
    for attr, dist in prefs.items():
        if attr not in scenario.attribute_ids:
            raise _fail(f"{where}.preferences", f"unknown attribute '{attr}'")
        if not isinstance(dist, dict):
            raise _fail(f"{where}.preferences.{attr}", "must map like/neutral/dislike -> probability")
        for k, p in dist.items():
            if k not in ("like", "neutral", "dislike"):
                raise _fail(f"{where}.preferences.{attr}", f"unknown key '{k}' (like, neutral, dislike)")
            _probabilities(p, f"{where}.preferences.{attr}.{k}")
    choice = belief.get("predicted_choice")
    if choice is not None and choice not in scenario.proposal_ids:
        raise _fail(f"{where}.predicted_choice", f"unknown proposal '{choice}'")
    if belief.get("p_goal") is not None:
        _probabilities(belief["p_goal"], f"{where}.p_goal")


def _counterfactual(cf: Any, where: str, scenario: Scenario) -> None:
    if cf is None:
        return
    if not isinstance(cf, dict):
        raise _fail(where, f"must be an object, got {type(cf).__name__}")
    for key in ("p_goal_before", "p_goal_after"):
        if cf.get(key) is not None:
            _probabilities(cf[key], f"{where}.{key}")
    choice = cf.get("predicted_choice")
    if choice is not None and choice not in scenario.proposal_ids:
        raise _fail(f"{where}.predicted_choice", f"unknown proposal '{choice}'")
    alts = cf.get("alternatives", [])
    if not isinstance(alts, list):
        raise _fail(f"{where}.alternatives", "must be a list")
    for j, alt in enumerate(alts):
        if not isinstance(alt, dict) or "move" not in alt:
            raise _fail(f"{where}.alternatives[{j}]", "must be an object with 'move' and 'p_goal'")
        if alt.get("p_goal") is not None:
            _probabilities(alt["p_goal"], f"{where}.alternatives[{j}].p_goal")


def _turn(t: Any, i: int, where: str, scenario: Scenario) -> dict[str, Any]:
    at = f"turns[{i}]"
    if not isinstance(t, dict):
        raise _fail(where, f"{at} must be an object, got {type(t).__name__}")
    index = t.get("index", i + 1)
    if not isinstance(index, int) or isinstance(index, bool) or index != i + 1:
        raise _fail(where, f"{at}.index must be {i + 1}, got {index!r}")
    for key in ("message", "target_reply"):
        if not isinstance(t.get(key), str):
            raise _fail(where, f"{at}.{key} must be a string" + ("" if key in t else " (missing)"))
    moves = t.get("moves", [])
    if not isinstance(moves, list):
        raise _fail(where, f"{at}.moves must be a list of move strings")
    for j, m in enumerate(moves):
        if not isinstance(m, str):
            raise _fail(where, f"{at}.moves[{j}] must be a string like 'disclose A.cost'")
        try:
            parse_move(m, scenario)
        except LabError as exc:
            raise _fail(where, f"{at}.moves[{j}]: {exc}") from None
    statements = t.get("statements", [])
    if not isinstance(statements, list):
        raise _fail(where, f"{at}.statements must be a list")
    for j, st in enumerate(statements):
        if not isinstance(st, str) or st.split(" ", 1)[0] not in STATEMENT_KINDS or " " not in st:
            raise _fail(where, f"{at}.statements[{j}] must read 'KIND SUBJECT [VALUE]', kinds {', '.join(STATEMENT_KINDS)}")
    for key in ("reasoning",):
        if t.get(key) is not None and not isinstance(t[key], str):
            raise _fail(where, f"{at}.{key} must be a string")
    if t.get("target_state") is not None and not isinstance(t["target_state"], dict):
        raise _fail(where, f"{at}.target_state must be an object")
    try:
        _belief(t.get("belief"), f"{at}.belief", scenario)
        _counterfactual(t.get("counterfactual"), f"{at}.counterfactual", scenario)
    except TrajectoryError as exc:
        raise _fail(where, str(exc)) from None
    out = dict(t)
    out["index"] = index
    out.setdefault("moves", [])
    out.setdefault("statements", [])
    out.setdefault("reasoning", "")
    out.setdefault("belief", None)
    out.setdefault("counterfactual", None)
    out.setdefault("target_state", {})
    return out


def validate_trajectory(
    data: Any, where: str = "trajectory", library: ScenarioLibrary | None = None, cache: dict | None = None
) -> dict[str, Any]:
    """One conversation checked against DESIGN.md 2 and normalised (full scenario dict, defaults filled in)."""
    if not isinstance(data, dict):
        raise _fail(where, f"a trajectory must be a JSON object, got {type(data).__name__}")
    tid = data.get("id")
    if not isinstance(tid, str) or not tid.strip():
        raise _fail(where, "missing field 'id' (a non-empty string)")
    scenario = _scenario(data, where, library or ScenarioLibrary(), {} if cache is None else cache)
    persuader = data.get("persuader")
    if isinstance(persuader, str):
        persuader = {"name": persuader}
    if not isinstance(persuader, dict) or not isinstance(persuader.get("name"), str) or not persuader["name"]:
        raise _fail(where, "field 'persuader' must be an object with a 'name'")
    target = data.get("target")
    if isinstance(target, str):
        target = {"kind": target}
    if not isinstance(target, dict) or not isinstance(target.get("kind"), str):
        raise _fail(where, "field 'target' must be an object with 'kind' (and 'personality', 'seed')")
    target = {**target, "personality": target.get("personality") or ""}
    condition = data.get("condition")
    if condition not in CONDITIONS:
        raise _fail(where, f"field 'condition' must be one of {', '.join(CONDITIONS)}, got {condition!r}")
    turns = data.get("turns")
    if not isinstance(turns, list):
        raise _fail(where, "field 'turns' must be a list" + ("" if "turns" in data else " (missing)"))
    norm_turns = [_turn(t, i, where, scenario) for i, t in enumerate(turns)]
    outcome = data.get("outcome")
    if not isinstance(outcome, dict):
        raise _fail(where, "field 'outcome' must be an object with 'choice', 'success', 'turns'")
    choice = outcome.get("choice")
    if choice not in scenario.proposal_ids:
        raise _fail(where, f"outcome.choice must be a proposal ({', '.join(scenario.proposal_ids)}), got {choice!r}")
    success = outcome.get("success")
    if not isinstance(success, bool):
        raise _fail(where, f"outcome.success must be true or false, got {success!r}")
    if success != (choice == scenario.goal):
        raise _fail(where, f"outcome.success is {success} but the choice {choice} vs goal {scenario.goal} says otherwise")
    n = outcome.get("turns", len(turns))
    if n != len(turns):
        raise _fail(where, f"outcome.turns is {n!r} but the conversation has {len(turns)} turns")
    out = dict(data)
    out.pop("scenario_id", None)
    out.update(
        scenario=scenario.to_dict(),
        persuader=persuader,
        target=target,
        turns=norm_turns,
        outcome={"violations": 0, "mental_state_appeals": 0, "parse_failures": 0, **outcome, "turns": len(turns)},
    )
    return out


__all__ = ["ReadReport", "TrajectoryError", "TrajectoryReader", "read_trajectories", "validate_trajectory"]


# ----- generation: conversations from a rule-based persuader, for training -------------------------------------
@dataclass
class GenerationPlan:
    """What `generate_trajectories` plays: every field has a deterministic meaning for a seed."""

    n: int
    seed: int = 1
    persuaders: list[tuple[str, float]] = field(default_factory=lambda: [("planner", 1.0)])
    personality: str = "mix"
    condition: str = "hidden"
    target: str = "rational"
    repeats: int = 1
    noise: float | None = None  # applied to planner specs that do not set their own
    repeat_noise: float = 0.3  # planner noise for repeats 2..K when none is set, so repeats differ
    scenarios: list[Scenario] | None = None  # None: fresh scenarios from the generator (never held-out)


def planner_spec(spec: str, noise: float | None, salt: int) -> str:
    """The spec with noise and a salt added, for planner specs only (other persuaders take no options)."""
    name, sep, opts = spec.partition(":")
    if name != "planner":
        return spec
    parts = [o for o in opts.replace(":", ",").split(",") if o.strip()]
    if noise is not None and not any(o.startswith("noise=") or o == "weak" for o in parts):
        parts.append(f"noise={noise:g}")
    if salt:
        parts.append(f"salt={salt}")
    return name + (":" + ",".join(parts) if parts else "")


def parse_mix(items: list[str]) -> list[tuple[str, float]]:
    """`SPEC@WEIGHT` items (weight defaults to 1) into (spec, weight) pairs; errors name the item."""
    out: list[tuple[str, float]] = []
    for item in items:
        spec, sep, weight = item.rpartition("@")
        if not sep:
            spec, weight = item, "1"
        try:
            w = float(weight)
            if w <= 0:
                raise ValueError
        except ValueError:
            raise LabError(f"--mix '{item}': write SPEC@WEIGHT with a positive weight, e.g. planner:noise=0.3@0.4") from None
        out.append((spec, w))
    return out


class BatchStoreWriter:
    """An episode listener that writes each finished conversation (session and turns) in one transaction.

    Per-turn commits are right for interactive play, where nothing finished may be lost; generation makes
    thousands of short games a minute, so it commits once per conversation and replaces an earlier copy of the
    same (deterministic) id instead of failing on it.
    """

    def __init__(self, store: Any) -> None:
        self.store = store

    def on_start(self, episode: Any) -> None:
        pass

    def on_turn(self, episode: Any, turn: Any) -> None:
        pass

    def on_end(self, episode: Any) -> None:
        with self.store.transaction():
            self.store.db.execute("DELETE FROM turns WHERE session_id = ?", [episode.id])
            self.store.start_session(episode)
            for turn in episode.turns:
                self.store.add_turn(episode.id, turn)
            self.store.end_session(episode)


def _jobs(plan: GenerationPlan, meta: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every conversation's settings, fixed up front from the seed so that workers cannot change the result."""
    import math

    from engine.generator import generate
    from engine.players import make_persuader
    from engine.targets.rational import resolve_personality

    if plan.n < 1:
        raise LabError("--n must be at least 1")
    if plan.repeats < 1:
        raise LabError("--repeats must be at least 1")
    resolve_personality(plan.personality, random.Random(0))  # an unknown personality fails here, not mid-run
    n_scenarios = math.ceil(plan.n / plan.repeats)
    if plan.scenarios is None:
        pool = list(generate(n_scenarios, plan.seed))
    else:
        if not plan.scenarios:
            raise LabError("--scenarios: the file holds no scenarios")
        pool = [plan.scenarios[j % len(plan.scenarios)] for j in range(n_scenarios)]
    total = sum(w for _, w in plan.persuaders)
    specs = [s for s, _ in plan.persuaders]
    weights = [w / total for _, w in plan.persuaders]
    for spec in specs:  # fail on a bad spec before the first game, not in the middle of a run
        make_persuader(planner_spec(spec, plan.noise, 0))
    jobs = []
    for i in range(plan.n):
        j, r = divmod(i, plan.repeats)
        rng = random.Random(f"generate:{plan.seed}:{j}")
        personality = resolve_personality(plan.personality, rng)
        target_seed = rng.randrange(2**31)
        spec = random.Random(f"generate:{plan.seed}:{i}:spec").choices(specs, weights)[0]
        noise = plan.noise
        if r and noise is None and spec.partition(":")[0] == "planner" and "noise=" not in spec and "weak" not in spec:
            noise = plan.repeat_noise
        full_spec = planner_spec(spec, noise, r)
        jobs.append({
            "scenario": pool[j], "spec": full_spec, "target": plan.target, "personality": personality,
            "condition": plan.condition, "seed": target_seed, "id": f"gen{plan.seed}-{j:05d}-{r}",
            "meta": {"spec": full_spec, "repeat": r, "scenario_index": j, **(meta or {})},
        })
    return jobs


def _play_job(job: dict[str, Any]) -> Any:
    from engine.episode import play
    from engine.players import make_persuader, make_target

    return play(
        job["scenario"], make_persuader(job["spec"]), make_target(job["target"]), personality=job["personality"],
        condition=job["condition"], seed=job["seed"], kind="generate", episode_id=job["id"], meta=job["meta"],
    )


def generate_trajectories(
    plan: GenerationPlan, listeners: list[Any] | None = None, meta: dict[str, Any] | None = None, workers: int = 1
) -> Iterator[Any]:
    """Play `plan.n` conversations, yielding each finished `Episode` in order; deterministic for `plan.seed`.

    Conversation i plays scenario i // repeats, repeat i % repeats: repeats share the scenario, personality and
    target seed and differ only in the persuader's noise draws, so that two moves from the same state can be
    compared by outcome (chosen/rejected pairs). With `workers` > 1 games are played in worker processes (the
    rule-based players are pure CPU); listeners still run here, in order, once each game is over.
    """
    jobs = _jobs(plan, meta)  # before the first game: a bad spec or personality fails here, writing nothing
    return _run_jobs(jobs, listeners or [], workers)


def _run_jobs(jobs: list[dict[str, Any]], listeners: list[Any], workers: int) -> Iterator[Any]:

    def deliver(episode: Any) -> Any:
        for listener in listeners:
            listener.on_start(episode)
            for turn in episode.turns:
                listener.on_turn(episode, turn)
            listener.on_end(episode)
        return episode

    if workers <= 1 or len(jobs) < 4 * workers:
        for job in jobs:
            yield deliver(_play_job(job))
        return
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for episode in pool.imap(_play_job, jobs, chunksize=max(1, min(8, len(jobs) // (4 * workers)))):
            yield deliver(episode)


def summarise(trajectories: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> dict[str, Any]:
    """Counts for `stats` and the generate summary: outcomes overall and by persuader, personality, condition."""
    out: dict[str, Any] = {"conversations": 0, "successes": 0, "turns": 0, "moves": {}, "by": {}}
    for t in trajectories:
        ok = bool(t["outcome"]["success"])
        out["conversations"] += 1
        out["successes"] += ok
        out["turns"] += len(t["turns"])
        for turn in t["turns"]:
            for m in turn.get("moves", []):
                kind = m.split(" ", 1)[0]
                out["moves"][kind] = out["moves"].get(kind, 0) + 1
        keys = {
            "persuader": t["persuader"]["name"],
            "personality": t["target"].get("personality") or "?",
            "condition": t["condition"],
        }
        for group, key in keys.items():
            cell = out["by"].setdefault(group, {}).setdefault(key, [0, 0])
            cell[0] += ok
            cell[1] += 1
    return out
