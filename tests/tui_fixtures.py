"""A small fixed store for the TUI tests and snapshots: same ids, same times, same results every run."""

from __future__ import annotations

import json
from pathlib import Path

from engine.game.episode import play
from engine.game.scenario import ScenarioLibrary
from engine.pipeline.evaluation import EvalConfig, evaluate
from engine.pipeline.training import runs
from engine.players.persuaders.baselines import RevealAll
from engine.players.targets.rational import RationalTarget
from engine.store import Store, StoreListener

HELDOUT = Path(__file__).resolve().parent.parent / "scenarios" / "heldout.jsonl"


def build_store(path: str | Path) -> Store:
    store = Store(path)
    library = ScenarioLibrary()
    games = [("business_vacation", "cooperative"), ("family_holiday", "stubborn"), ("city_budget", "open"),
             ("hiring_decision", "skeptical")]
    for i, (scenario_id, personality) in enumerate(games):
        play(library.get(scenario_id), RevealAll(), RationalTarget(), personality=personality, seed=i,
             kind="play" if i % 2 else "evaluate", episode_id=f"sess{i:04d}fixd", listeners=[StoreListener(store)])
    with store.transaction():
        store.db.execute("UPDATE sessions SET created_at = '2026-01-0' || (rowid) || 'T10:00:00.000+00:00'")
        run_id = runs.start_run(store, {}, backend="local", method="sft", base_model="smollm2", data_path="d.jsonl",
                                output_dir="models/fixed", name="fixed", run_id="fixed-run")
        store.db.execute("UPDATE training_runs SET status='finished', total_steps=20, "
                         "created_at='2026-01-01T00:00:00', metrics_json=? WHERE id=?",
                         [json.dumps({"last_loss": 1.2}), run_id])
    for step in range(1, 21):
        runs.add_step(store, run_id, {"step": step, "loss": 3.0 - step * 0.09, "tokens_per_s": 150.0,
                                      "eta_s": (20 - step) * 2.0, "epoch": step / 20})
    # two real evaluation runs (engine.pipeline.evaluation), played in a scratch store; their rows are copied with fixed
    # ids and times, and without the wall-clock timing, so the leaderboard is the same on every run
    scratch = Store(":memory:")
    for i, model in enumerate(("greedy", "reveal-all")):
        result = evaluate(scratch, EvalConfig(model=model, num_eval=12, scenarios=str(HELDOUT)), name=f"{model}-vs-rational")
        row = dict(result.run)
        results = json.loads(row["results_json"])
        results.pop("timing", None)
        row.update(id=f"eval{i}fixd", results_json=json.dumps(results), created_at=f"2026-01-0{i + 1}T12:00:00",
                   updated_at=f"2026-01-0{i + 1}T12:00:00")
        with store.transaction():
            store.db["eval_runs"].insert(row)
    scratch.close()
    return store
