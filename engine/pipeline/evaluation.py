"""Evaluation runs: one agent against one simulated human over a fixed, deterministic set of episodes.

An episode is fixed by scenario x condition x seed x personality (`EpisodeSpec`); its seed derives from the run's
`seed`, the scenario id and the repeat (`engine.game.seeding`), so episodes are independent of one another while two
agents evaluated with the same settings play the same episodes and can be compared pair by pair. Every episode is a session of kind
`evaluate` whose id is derived from the run and the episode key: re-running a run by name skips the episodes
already finished and replays the rest (crash, Ctrl-C or API error). Episodes run in threads (`concurrency`),
each with its own players and its own store connection; local models batch the threads' requests themselves.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, replace
from itertools import islice
from typing import Any

from engine.errors import LabError
from engine.game.episode import play
from engine.game.interfaces import CONDITIONS, RULE_SETS
from engine.game.record import Episode
from engine.game.scenario import Scenario, ScenarioLibrary, load_path
from engine.game.seeding import episode_seed, personality_rng
from engine.paths import resolve
from engine.pipeline.metrics import summarize
from engine.players.persuaders.llm import LLMPersuader
from engine.players.registry import make_persuader, make_target
from engine.players.targets.rational import resolve_personality
from engine.store import Store, StoreListener, dumps, session_episode


@dataclass(frozen=True)
class EvalConfig:
    """What defines a run; stored as `eval_runs.config_json` and checked when a run is resumed."""

    model: str
    human_agent: str = "rational"
    scenarios: str = "scenarios/heldout.jsonl"
    num_eval: int = 100
    personality: str = "cooperative"
    condition: str = "hidden"  # hidden | revealed | both
    seeds: int = 1
    max_turns: int | None = None
    seed: int = 0  # the run seed: another value is an independent replication of the same run
    rules: str = "lab"  # lab | mindgames (engine.game.interfaces.RULE_SETS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EpisodeSpec:
    scenario: Scenario
    condition: str
    seed: int  # derived from (run seed, scenario id, repeat): every player seeds its randomness from it
    personality: str
    repeat: int = 0

    @property
    def key(self) -> str:
        return f"{self.scenario.id}|{self.condition}|seed={self.seed}|{self.personality}"


def load_scenarios(spec: str) -> list[Scenario]:
    """A scenario file or folder, or a single scenario id from the library."""
    if resolve(spec).exists():
        return load_path(spec)
    return [ScenarioLibrary().get(spec)]


def plan_episodes(config: EvalConfig, scenarios: Sequence[Scenario] | None = None) -> list[EpisodeSpec]:
    """The run's episodes, in a fixed order: the first `num_eval` scenarios x repeats (`seeds`) x conditions.

    Each (scenario, repeat) gets its own seed, and with personality 'mix' draws its personality from it, so the
    hidden and revealed episodes of a scenario, and every agent, meet the same person with the same draws.
    """
    if config.condition not in (*CONDITIONS, "both"):
        raise LabError(f"--condition: unknown '{config.condition}' (known: hidden, revealed, both)")
    if config.rules not in RULE_SETS:
        raise LabError(f"--rules: unknown '{config.rules}' (known: {', '.join(RULE_SETS)})")
    if config.num_eval < 1 or config.seeds < 1:
        raise LabError("--num-eval and --seeds must be at least 1")
    scenarios = list(scenarios if scenarios is not None else load_scenarios(config.scenarios))
    if not scenarios:
        raise LabError(f"--scenarios: no scenarios in {config.scenarios}")
    if config.num_eval > len(scenarios):  # playing fewer than asked, silently, would misreport the run's size
        raise LabError(f"--num-eval {config.num_eval}: {config.scenarios} holds only {len(scenarios)} scenario(s); "
                       f"pass --num-eval {len(scenarios)} or fewer")
    scenarios = scenarios[: config.num_eval]
    if config.max_turns:
        scenarios = [replace(s, max_turns=config.max_turns) for s in scenarios]
    conditions = list(CONDITIONS) if config.condition == "both" else [config.condition]
    specs = []
    for scenario in scenarios:
        for repeat in range(config.seeds):
            seed = episode_seed(config.seed, scenario.id, repeat)
            personality = resolve_personality(config.personality, personality_rng(seed))
            specs.extend(EpisodeSpec(scenario, c, seed, personality, repeat) for c in conditions)
    return specs


def check_run(config: EvalConfig) -> tuple[list[EpisodeSpec], list[str]]:
    """Everything about a run that can fail before its first game, checked once; its episodes and its notes.

    The plan and both specs are checked (a bad spec fails now, not once per episode), and a model that decodes
    under a grammar has every scenario's grammar built: one that cannot be is a LabError naming the scenario,
    where each game would otherwise error at its start. The notes (a reply format other than the one the model
    was trained on) are for the caller to show once, before the games.
    """
    specs = plan_episodes(config)
    persuader = make_persuader(config.model)
    make_target(config.human_agent)
    notes: list[str] = []
    if isinstance(persuader, LLMPersuader):
        for scenario in {spec.scenario.id: spec.scenario for spec in specs}.values():
            persuader.check_scenario(scenario)
        if persuader.format_warning:
            notes.append(persuader.format_warning)
    return specs, notes


def episode_id(run_id: str, key: str) -> str:
    return hashlib.sha1(f"{run_id}|{key}".encode()).hexdigest()[:12]


# ----- the run row ------------------------------------------------------------------------------------
def open_run(store: Store, name: str | None, config: EvalConfig, n_planned: int) -> dict[str, Any]:
    """The run called `name`, created if new; an existing one must have been started with the same config."""
    row = store.find_eval_run(name) if name else None
    if row:
        # a run stored before a setting existed (seed, rules) was played with that setting's default
        old = {**EvalConfig(model=config.model).to_dict(), **json.loads(row["config_json"])}
        if old != config.to_dict():
            diff = ", ".join(f"{k}: {old.get(k)!r} -> {v!r}" for k, v in config.to_dict().items() if old.get(k) != v)
            raise LabError(f"--name {name}: that run exists with other settings ({diff}); pick a new name")
        return row
    run_id = uuid.uuid4().hex[:12]
    store.add_eval_run({
        "id": run_id, "name": name or f"{config.model}-{run_id[:6]}", "persuader": config.model,
        "target": config.human_agent, "config_json": dumps(config.to_dict()), "status": "running",
        "results_json": None, "n_planned": n_planned,
    })
    return store.find_eval_run(run_id)


def run_episodes(store: Store, run_id: str) -> list[Episode]:
    """Every session of a run as the game record (each turn with its usage, an errored one with its error)."""
    return [session_episode(store, row["id"]) for row in store.run_sessions(run_id)]


# ----- playing ----------------------------------------------------------------------------------------
@dataclass
class RunResult:
    run: dict[str, Any]
    results: dict[str, Any]
    played: int
    skipped: int
    wall_s: float


class _ThreadStores:
    """One store connection per worker thread (sqlite connections are not shared between threads)."""

    def __init__(self, path: str) -> None:
        self.path, self.local, self.all = path, threading.local(), []
        self._lock = threading.Lock()

    def get(self) -> Store:
        if not hasattr(self.local, "store"):
            self.local.store = Store(self.path)
            with self._lock:
                self.all.append(self.local.store)
        return self.local.store

    def close(self) -> None:
        for s in self.all:
            s.close()


class _StopAfterTurn:
    """Episode listener that ends an episode in flight after its current turn once the run is stopping.

    Without it, Ctrl-C would leave every in-flight episode (a whole local-model game each) to play to its end
    before the process could exit. The turn is stored first (this listener comes after the store's), and the
    episode is marked interrupted, so a resumed run replays it.
    """

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def on_start(self, episode: Episode) -> None:
        pass

    def on_turn(self, episode: Episode, turn: Any) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt

    def on_end(self, episode: Episode) -> None:
        pass


def evaluate(
    store: Store,
    config: EvalConfig,
    *,
    name: str | None = None,
    concurrency: int = 1,
    on_start: Callable[[int, int], None] | None = None,
    on_episode: Callable[[Episode], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> RunResult:
    """Play (or resume) a run and store its results. `on_start(total, done)` and `on_episode` drive a progress bar;
    `on_note` gets `check_run`'s notes (warnings) before the first game; the run's row keeps them (`notes`).

    A player's failure ends only its episode (errored, reason kept); a run whose every episode errored is marked
    `errored` (with `results["first_error"]`), not finished. Ctrl-C stops the run, marks it interrupted and
    re-raises, with every finished episode already committed.
    """
    specs, notes = check_run(config)  # before the run row: a run that cannot start leaves none behind
    if on_note:
        for note in notes:
            on_note(note)
    run = open_run(store, name, config, len(specs))
    if notes:  # kept with the run, where the TUI's Evaluation pane shows them
        store.update_eval_run(run["id"], notes="\n".join(notes))
    done = store.finished_episode_keys(run["id"])
    todo = [s for s in specs if s.key not in done]
    if on_start:
        on_start(len(specs), len(specs) - len(todo))
    store.update_eval_run(run["id"], status="running", n_planned=len(specs))
    shared = store.path == ":memory:"  # an in-memory store cannot be reopened per thread; its lock serialises writes
    stores = _ThreadStores(store.path)
    stop = threading.Event()

    def one(spec: EpisodeSpec) -> Episode:
        st = store if shared else stores.get()
        eid = episode_id(run["id"], spec.key)
        st.delete_session(eid)  # an unfinished attempt of this episode: replayed under the same id
        return play(
            spec.scenario, make_persuader(config.model), make_target(config.human_agent),
            personality=spec.personality, condition=spec.condition, seed=spec.seed, kind="evaluate", rules=config.rules,
            episode_id=eid, listeners=[StoreListener(st), _StopAfterTurn(stop)],
            meta={"run_id": run["id"], "episode_key": spec.key, "repeat": spec.repeat},
        )

    started = time.perf_counter()
    played = 0
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="ptom-eval")
    queue = iter(todo)
    try:  # at most `concurrency` episodes in flight, so a Ctrl-C leaves nothing half-queued
        pending = {pool.submit(one, s) for s in islice(queue, max(1, concurrency))}
        while pending:
            finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for fut in finished:
                episode = fut.result()
                pending |= {pool.submit(one, s) for s in islice(queue, 1)}
                played += 1
                if on_episode:
                    on_episode(episode)
    except BaseException:  # Ctrl-C: queued episodes are dropped; those in flight stop after their current turn
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        store.update_eval_run(run["id"], status="interrupted")
        raise
    pool.shutdown(wait=True)
    stores.close()
    wall = time.perf_counter() - started
    episodes = run_episodes(store, run["id"])
    results = summarize(episodes)
    if config.condition == "both":  # the two conditions answer different questions: each also on its own
        results["by_condition"] = {c: summarize([e for e in episodes if e.condition == c]) for c in CONDITIONS}
    results["timing"] = {"wall_s": round(wall, 3), "played": played, "concurrency": concurrency}
    errors = [e.error for e in episodes if e.error]
    if errors and len(errors) == len(episodes):  # nothing to score: a broken model or key, not a 0% agent
        results["first_error"] = errors[0]
        store.update_eval_run(run["id"], status="errored", results_json=dumps(results))
    else:
        store.update_eval_run(run["id"], status="finished", results_json=dumps(results))
    run = store.find_eval_run(run["id"]) or run
    return RunResult(run, results, played, len(specs) - len(todo), wall)
