"""Trajectory files (DESIGN.md 2): the one reader and validator, used by import, data preparation and training.

A trajectory file is JSONL, one conversation a line. Every consumer goes through `read_trajectories`, so a bad
line is reported the same way everywhere: by file, line number and field. The `scenario` field may be a full
scenario or a `scenario_id` that resolves in `scenarios/`; either way the reader yields `engine.game.record.Episode`
records with the scenario resolved, so consumers never resolve ids or read raw dicts themselves.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.errors import LabError
from engine.game.record import Episode, error_text
from engine.game.scenario import Scenario, ScenarioLibrary
from engine.jsonl import json_lines
from engine.pipeline.metrics import outcome_summary
from engine.players.spec import PlayerSpec, parse_weighted


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

    def __next__(self) -> Episode:
        return next(self._it)

    def _read(self) -> Iterator[Episode]:
        if self.path.is_dir():
            raise TrajectoryError(f"{self.path}: is a directory, not a trajectory file")
        cache: dict[str, Scenario] = {}
        first_line: dict[str, int] = {}  # conversation id -> its line: a repeated id would overwrite in the store
        on_bad = (lambda n, why: self.report.bad.append((n, why))) if self.skip_bad else None
        for lineno, data in json_lines(self.path, TrajectoryError, on_bad):
            where = f"{self.path}:{lineno}"
            try:
                traj = validate_trajectory(data, where, self.library, cache)
                if traj.id in first_line:
                    raise TrajectoryError(f"{where}: id: '{traj.id}' repeats the conversation on line {first_line[traj.id]}")
                first_line[traj.id] = lineno
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
    """Validated trajectories (`engine.game.record.Episode`) from a JSONL file, lazily.

    A bad line raises `TrajectoryError` naming `file:line` and the field; with `skip_bad` it is skipped and
    recorded in the returned reader's `.report.bad` (also `.bad`) as `(line, reason)`.
    """
    return TrajectoryReader(path, skip_bad, library)


def validate_trajectory(
    data: Any, where: str = "trajectory", library: ScenarioLibrary | None = None, cache: dict | None = None
) -> Episode:
    """One conversation checked against the record (DESIGN.md 2); errors read `where: field.path: reason`.

    A trajectory file holds finished conversations, so here the outcome is required (a stored session's need not)."""
    if not isinstance(data, dict):
        raise TrajectoryError(f"{where}: a trajectory must be a JSON object, got {type(data).__name__}")
    context = {"library": library or ScenarioLibrary(), "cache": {} if cache is None else cache}
    try:
        episode = Episode.model_validate(data, context=context)
    except ValidationError as exc:
        raise TrajectoryError(f"{where}: {error_text(exc)}") from None
    if episode.outcome is None:
        raise TrajectoryError(f"{where}: outcome: missing (a trajectory is a finished conversation)")
    return episode


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
    rules: str = "lab"  # lab | mindgames (engine.game.interfaces.RULE_SETS)


def planner_spec(spec: PlayerSpec, noise: float | None, salt: int) -> PlayerSpec:
    """The spec with noise (unless it sets its own, or is the `weak` preset) and a salt added, for planner specs
    only: other persuaders have no such options."""
    if spec.kind != "planner":
        return spec
    if noise is not None and "noise" not in spec.options and spec.argument != "weak":
        spec = spec.with_options(noise=f"{noise:g}")
    return spec.with_options(salt=str(salt)) if salt else spec


def parse_mix(items: list[str]) -> list[tuple[str, float]]:
    """`SPEC@WEIGHT` items (weight defaults to 1) into (spec, weight) pairs; errors name the item."""
    return [(str(spec), weight) for spec, weight in map(parse_weighted, items)]


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
            self.store.delete_session(episode.id)
            if episode.meta.get("run_id"):  # the batch's row in eval_runs, which its sessions point to
                self.store.ensure_run(episode.meta["run_id"], episode.kind)
            self.store.start_session(episode)
            for turn in episode.turns:
                self.store.add_turn(episode.id, turn)
            self.store.end_session(episode)


def _jobs(plan: GenerationPlan, meta: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every conversation's settings, fixed up front from the seed so that workers cannot change the result."""
    import math

    from engine.game.generator import generate
    from engine.game.seeding import episode_seed, personality_rng
    from engine.players.registry import canonical, make_persuader, make_target
    from engine.players.targets.rational import resolve_personality

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
    specs = [canonical(s) for s, _ in plan.persuaders]
    weights = [w / total for _, w in plan.persuaders]
    for spec in specs:  # fail on a bad spec before the first game, not in the middle of a run
        make_persuader(planner_spec(spec, plan.noise, 0))
    make_target(plan.target)  # likewise a bad target spec or a missing API key
    jobs = []
    for i in range(plan.n):
        j, r = divmod(i, plan.repeats)
        # a scenario's repeats share its target (the same state for DPO pairs); a scenario met again when a short
        # --scenarios file is cycled through is a new episode, so the cycle is the repeat the seed derives from
        cycle = j // len(plan.scenarios) if plan.scenarios else 0
        target_seed = episode_seed(plan.seed, pool[j].id, cycle)
        personality = resolve_personality(plan.personality, personality_rng(target_seed))
        spec = random.Random(f"generate:{plan.seed}:{i}:spec").choices(specs, weights)[0]
        noise = plan.repeat_noise if r and plan.noise is None else plan.noise  # repeats differ in their draws
        full_spec = str(planner_spec(spec, noise, r))
        jobs.append({
            "scenario": pool[j], "spec": full_spec, "target": plan.target, "personality": personality,
            "condition": plan.condition, "seed": target_seed, "id": f"gen{plan.seed}-{j:05d}-{r}", "rules": plan.rules,
            "meta": {"spec": full_spec, "repeat": r, "scenario_index": j, **(meta or {})},
        })
    return jobs


def _play_job(job: dict[str, Any]) -> Any:
    from engine.game.episode import play
    from engine.players.registry import make_persuader, make_target

    return play(
        job["scenario"], make_persuader(job["spec"]), make_target(job["target"]), personality=job["personality"],
        condition=job["condition"], seed=job["seed"], kind="generate", episode_id=job["id"], meta=job["meta"],
        rules=job["rules"],
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


def summarise(trajectories: Iterable[Episode]) -> dict[str, Any]:
    """What `trajectories stats` and the TUI's Data pane show of a file: `metrics.outcome_summary` by persuader,
    personality and condition, plus the turns played and the moves made by kind."""
    trajectories = list(trajectories)
    out = outcome_summary(
        (bool(t.outcome and t.outcome.success),
         {"persuader": t.persuader.name, "personality": t.target.personality or "?", "condition": t.condition})
        for t in trajectories
    )
    out["turns"] = sum(len(t.turns) for t in trajectories)
    out["moves"] = dict(Counter(m.kind for t in trajectories for turn in t.turns for m in turn.moves))
    return out
