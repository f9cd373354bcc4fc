"""Evaluation: launch `ptom-lab evaluate`, watch its progress, and the leaderboard of every evaluation run.

Evaluation itself is helper code (`engine/evaluation.py`, the `evaluate` command); the pane starts it as a child
process and reads the store: `eval_runs` (config, status, `results_json`, `n_planned`) and the sessions that carry
each run's `run_id`. So a run started in another terminal shows up here too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Input, Label, ProgressBar, Select

POLL_S = 1.0


def success_of(results: dict[str, Any]) -> tuple[float | None, float | None, float | None, int | None]:
    """Rate, 95% interval and games of a finished run, read from `results_json` as `engine.metrics.summarize`
    writes it (`success`: rate, ci95 [low, high], n). The TUI computes none of these numbers."""
    success = results.get("success") if isinstance(results, dict) else None
    if not isinstance(success, dict):
        return None, None, None, None
    lo, hi = (success.get("ci95") or [None, None])[:2]
    return success.get("rate"), lo, hi, success.get("n")


def _heldout() -> str:
    """The held-out scenarios shipped with the lab, as a path that works from any folder."""
    from engine.scenario import DEFAULT_DIR

    path = DEFAULT_DIR / "heldout.jsonl"
    return "scenarios/heldout.jsonl" if Path("scenarios/heldout.jsonl").resolve() == path else str(path)


class EvaluationPane(Vertical):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.children_started: list[subprocess.Popen] = []

    def compose(self) -> ComposeResult:
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
            yield Select([(c, c) for c in ("hidden", "revealed", "both")], value="hidden", allow_blank=False,
                         id="eval-condition", compact=True)
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
        from engine.evaluation import list_runs

        with self.app.worker_store() as store:
            runs = list_runs(store)
        self.app.call_from_thread(self._show, runs)

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
                f"{len(runs)} evaluation run(s), best first; Ctrl+E launches `ptom-lab evaluate` with the settings above"
                if runs else "No evaluation yet: Ctrl+E launches `ptom-lab evaluate` with the settings above.")

    @on(Button.Pressed, "#eval-launch")
    def action_launch(self) -> None:
        n = str(self.query_one("#eval-n", Input).value or "20").strip()
        cmd = [sys.executable, "-m", "engine", "evaluate", "--db", self.app.db_path,
               "--model", str(self.query_one("#eval-model", Input).value).strip() or "planner",
               "--human-agent", str(self.query_one("#eval-human", Input).value).strip() or "rational",
               "--num-eval", n, "--condition", str(self.query_one("#eval-condition", Select).value)]
        scenarios = str(self.query_one("#eval-scenarios", Input).value).strip()
        if scenarios:
            cmd += ["--scenarios", scenarios]
        self.children_started.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        self.app.notify("Evaluation started: " + " ".join(cmd[2:]))
        self.watch_child(self.children_started[-1])

    @work(thread=True, group="eval-child", exit_on_error=False)
    def watch_child(self, child: subprocess.Popen) -> None:
        """A failed evaluate (a bad flag, a missing key) says why in a notification, not silently."""
        _, err = child.communicate()
        if child.returncode:
            message = (err or b"").decode(errors="replace").strip().splitlines()
            self.app.call_from_thread(self.app.notify, message[-1] if message else f"evaluate exited {child.returncode}",
                                      title="Evaluation failed", severity="error", timeout=15)
