"""Evaluation: launch an evaluation run, watch its progress, and the leaderboard of every evaluation run.

Evaluation itself is `engine/pipeline/evaluation.py`; the pane builds an `EvalConfig` into an `engine.pipeline.jobs` evaluate job
(a child process) and reads the store: `eval_runs` (config, status, `results_json`, `n_planned`) and the sessions
that carry each run's `run_id`. So a run started in another terminal shows up here too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Input, Label, ProgressBar, Select

from engine.errors import LabError
from engine.game.interfaces import CONDITIONS
from ptom_tui.messages import JobEnded, ReportsFailures

if TYPE_CHECKING:
    from engine.pipeline.evaluation import EvalConfig

POLL_S = 1.0
EVAL_CONDITIONS = (*CONDITIONS, "both")  # `evaluate` also plays both conditions in one run


def success_of(results: dict[str, Any]) -> tuple[float | None, float | None, float | None, int | None]:
    """Rate, 95% interval and games of a finished run, read from `results_json` as `engine.pipeline.metrics.summarize`
    writes it (`success`: rate, ci95 [low, high], n). The TUI computes none of these numbers."""
    success = results.get("success") if isinstance(results, dict) else None
    if not isinstance(success, dict):
        return None, None, None, None
    lo, hi = (success.get("ci95") or [None, None])[:2]
    return success.get("rate"), lo, hi, success.get("n")


def _heldout() -> str:
    """The held-out scenarios shipped with the lab, as a path that works from any folder."""
    from engine.game.scenario import DEFAULT_DIR

    path = DEFAULT_DIR / "heldout.jsonl"
    return "scenarios/heldout.jsonl" if Path("scenarios/heldout.jsonl").resolve() == path else str(path)


class EvaluationPane(ReportsFailures, Vertical):
    class RunsRead(Message):
        """The store's evaluation runs, newest first, as a poll read them."""

        def __init__(self, runs: list[dict[str, Any]]) -> None:
            super().__init__()
            self.runs = runs

    def compose(self) -> ComposeResult:
        from engine.players.targets.rational import PERSONALITIES  # here, after the first frame: a slow import

        with Horizontal(classes="filters"):
            yield Label("persuader", classes="inline")
            yield Input("planner", placeholder="--model spec", id="eval-model", compact=True)
            yield Label("human", classes="inline")
            yield Input("rational", placeholder="--human-agent spec", id="eval-human", compact=True)
            yield Label("games", classes="inline")
            yield Input("20", placeholder="n", id="eval-n", type="integer", compact=True)
        with Horizontal(classes="filters"):
            yield Label("scenarios", classes="inline")
            yield Input(_heldout(), placeholder="--scenarios file or folder", id="eval-scenarios", compact=True)
            yield Label("condition", classes="inline")
            yield Select([(c, c) for c in EVAL_CONDITIONS], value="hidden", allow_blank=False,
                         id="eval-condition", compact=True)
            yield Select([(p, p) for p in (*PERSONALITIES, "mix")], value="cooperative", allow_blank=False,
                         id="eval-personality", compact=True, tooltip="the simulated human's personality")
            yield Button("Evaluate", id="eval-launch", variant="primary", compact=True)
        yield Label("", id="eval-status")
        yield ProgressBar(total=1, id="eval-progress", show_eta=False)
        table = DataTable(id="eval-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("rank", "name", "persuader", "human", "success", "95% interval", "games", "status")
        yield table

    def on_mount(self) -> None:
        self.poll()
        self.set_interval(POLL_S, self.poll)

    def poll(self) -> None:
        self.read_store()

    @work(thread=True, exclusive=True, group="eval-poll", exit_on_error=False)
    def read_store(self) -> None:
        with self.app.worker_store() as store:
            self.post_message(self.RunsRead(store.eval_runs()))

    def on_evaluation_pane_runs_read(self, message: RunsRead) -> None:
        self._show(message.runs)

    def _show(self, runs: list[dict[str, Any]]) -> None:
        rows = []
        for r in runs:
            rate, lo, hi, games = success_of(json.loads(r["results_json"] or "{}"))
            if games is None:
                games = r["done"] if r["status"] == "running" else None
            rows.append((rate, lo, hi, games, r))
        # best first, as `ptom-lab compare` ranks: success rate, then the interval's lower bound; unscored last
        rows.sort(key=lambda x: (x[0] is None, -(x[0] or 0.0), -(x[1] or 0.0)))
        cells = []
        for rank, (rate, lo, hi, games, r) in enumerate(rows, 1):
            interval = f"[{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else "-"
            cells.append((str(rank), r["name"] or r["id"], r["persuader"] or "", r["target"] or "",
                          "-" if rate is None else f"{rate:.2f}", interval, str(games if games is not None else "-"),
                          r["status"] or ""))
        table = self.query_one("#eval-table", DataTable)
        current = [tuple(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]
        if current != cells:
            table.clear()
            for row in cells:
                table.add_row(*row)
        running = [r for r in runs if r["status"] == "running"]
        bar = self.query_one(ProgressBar)
        if running:
            r = running[0]
            bar.update(total=r["n_planned"] or None, progress=r["done"])
            self.query_one("#eval-status", Label).update(
                Text(f"running {r['name'] or r['id']}: {r['done']}/{r['n_planned'] or '?'} games"))
        else:
            bar.update(total=1, progress=1 if runs else 0)
            self.query_one("#eval-status", Label).update(
                f"{len(runs)} evaluation run(s), best first; Ctrl+E evaluates with the settings above"
                if runs else "No evaluation yet: Ctrl+E evaluates with the settings above.")

    def config(self) -> EvalConfig:
        """The pane's settings as the engine's own `EvalConfig`."""
        from engine.pipeline.evaluation import EvalConfig

        n = str(self.query_one("#eval-n", Input).value or "20").strip()
        return EvalConfig(
            model=str(self.query_one("#eval-model", Input).value).strip() or "planner",
            human_agent=str(self.query_one("#eval-human", Input).value).strip() or "rational",
            scenarios=str(self.query_one("#eval-scenarios", Input).value).strip() or _heldout(),
            num_eval=int(n) if n.isdigit() else 20, personality=str(self.query_one("#eval-personality", Select).value),
            condition=str(self.query_one("#eval-condition", Select).value),
        )

    @on(Button.Pressed, "#eval-launch")
    def action_launch(self) -> None:
        """An evaluation job in a child process; the same settings while one runs are refused (Ctrl+E twice)."""
        from engine.pipeline.jobs import evaluate_job

        config = self.config()
        same = [p for p in self.app.running_jobs() if p.job.kind == "evaluate" and p.job.settings == config]
        if same:
            self.app.notify(f"This evaluation is already running as {same[0].job.run}.", severity="warning")
            return
        try:
            job = evaluate_job(config, self.app.db_path)
        except LabError as exc:
            self.app.notify(str(exc), title="Cannot evaluate", severity="error", timeout=10)
            return
        log = Path(self.app.db_path).resolve().parent / "logs" / f"evaluate-{job.id}.log"
        self.app.start_job(job, log, self)
        self.app.notify(f"Evaluation {job.run} started: {config.model} vs {config.human_agent}, "
                        f"{config.num_eval} scenario(s); its output goes to {log}")

    def on_job_ended(self, message: JobEnded) -> None:
        """A finished run is read at once (a failed one opens its log: the app does that)."""
        if message.returncode == 0:
            self.poll()
