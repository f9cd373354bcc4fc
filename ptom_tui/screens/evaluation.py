"""Evaluation: launch an evaluation run, watch its progress, the leaderboard of every evaluation run, and one run's
detail (Enter): its results per personality and McNemar's paired test against another run.

Evaluation itself is `engine/pipeline/evaluation.py`; the pane builds an `EvalConfig` into an `engine.pipeline.jobs`
evaluate job (a child process) and reads the store: `eval_runs` (config, status, `results_json`, `n_planned`) and the
sessions that carry each run's `run_id`. So a run started in another terminal shows up here too. The leaderboard is
`engine.pipeline.leaderboard`'s (ranked and flattened there, as `ptom-lab compare` prints it); the detail's figures
are `engine.pipeline.metrics`' (`by_personality`, `paired`). The pane computes none of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, ProgressBar, Select

from engine.errors import LabError
from engine.game.interfaces import CONDITIONS
from ptom_tui.messages import JobEnded, ReportsFailures

if TYPE_CHECKING:
    from engine.pipeline.evaluation import EvalConfig

POLL_S = 1.0
EVAL_CONDITIONS = (*CONDITIONS, "both")  # `evaluate` also plays both conditions in one run


COLUMNS = ("rank", "run", "persuader", "success", "95% interval", "games", "turns", "align", "CF acc",
           "lies", "cost", "status")


def leaderboard_cells(runs: list[dict[str, Any]]) -> list[tuple[str, tuple[str, ...]]]:
    """(row key, cells) of every run: the engine's leaderboard (`leaderboard.stored_board`, ranked there) first,
    then the runs with no results yet (running, interrupted) with their games so far. The key is `run|condition`
    (the persuader's label ends with the condition, as in `compare`)."""
    from engine.pipeline.leaderboard import num, pct, rows, stored_board

    by_name = {r["name"]: r for r in runs}
    out = []
    for r in rows(stored_board(runs)):
        interval = "-" if r["rate"] is None else f"{pct(r['ci_low'])}–{pct(r['ci_high'])}"
        out.append((f"{r['run']}|{r['condition']}", (
            str(r["rank"]), r["run"], r["label"], pct(r["rate"]), interval, str(r["n"]),
            num(r["turns_mean"], 1), pct(r["alignment"]), pct(r["cf_accuracy"]), str(r["lies"]),
            f"${r['cost_usd']:.4f}", by_name[r["run"]]["status"] or "")))
    for run in runs:
        if not run.get("results_json"):
            condition = json.loads(run.get("config_json") or "{}").get("condition", "")
            out.append((f"{run['name']}|{condition}", (
                "-", run["name"] or run["id"], run["persuader"] or "", "-", "-", str(run["done"]),
                *["-"] * 5, run["status"] or "")))
    return out


def _heldout() -> str:
    """The held-out scenarios shipped with the lab, as a path that works from any folder."""
    from engine.game.scenario import DEFAULT_DIR

    path = DEFAULT_DIR / "heldout.jsonl"
    return "scenarios/heldout.jsonl" if Path("scenarios/heldout.jsonl").resolve() == path else str(path)


class EvaluationPane(ReportsFailures, Vertical):
    class RunsRead(Message):
        """The store's evaluation runs, newest first, as a poll read them, and the leaderboard's cells."""

        def __init__(self, runs: list[dict[str, Any]], cells: list[tuple[str, tuple[str, ...]]]) -> None:
            super().__init__()
            self.runs, self.cells = runs, cells

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
        table.add_columns(*COLUMNS)
        yield table

    def on_mount(self) -> None:
        self.noted: set[str] = set()  # runs whose notes have been shown
        self.poll()
        self.set_interval(POLL_S, self.poll)

    def poll(self) -> None:
        self.read_store()

    @work(thread=True, exclusive=True, group="eval-poll", exit_on_error=False)
    def read_store(self) -> None:
        """The runs and their leaderboard, built here: the leaderboard's engine imports stay off the UI thread."""
        with self.app.worker_store() as store:
            runs = store.eval_runs()
        self.post_message(self.RunsRead(runs, leaderboard_cells(runs)))

    def on_evaluation_pane_runs_read(self, message: RunsRead) -> None:
        self._show(message.runs, message.cells)

    def _show(self, runs: list[dict[str, Any]], cells: list[tuple[str, tuple[str, ...]]]) -> None:
        table = self.query_one("#eval-table", DataTable)
        current = [tuple(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]
        if current != [row for _, row in cells]:
            cursor = table.cursor_row
            table.clear()
            for key, row in cells:
                table.add_row(*row, key=key)
            if table.row_count:
                table.move_cursor(row=min(cursor, table.row_count - 1))
        for r in runs:  # a run's warning (an adapter playing a format it was not trained on), once per run
            if r.get("notes") and r["id"] not in self.noted:
                self.noted.add(r["id"])
                if r["status"] == "running":
                    self.app.notify(r["notes"], title=f"Evaluation {r['name'] or r['id']}", severity="warning",
                                    timeout=15)
        running = [r for r in runs if r["status"] == "running"]
        bar = self.query_one(ProgressBar)
        if running:
            r = running[0]
            bar.update(total=r["n_planned"] or None, progress=r["done"])
            status = Text(f"running {r['name'] or r['id']}: {r['done']}/{r['n_planned'] or '?'} games")
            if r.get("notes"):
                status.append(f"  {r['notes']}", style="yellow")
            self.query_one("#eval-status", Label).update(status)
        else:
            bar.update(total=1, progress=1 if runs else 0)
            self.query_one("#eval-status", Label).update(
                f"{len(runs)} evaluation run(s), best first; Enter: a run's detail; Ctrl+E evaluates"
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

    @on(DataTable.RowSelected, "#eval-table")
    def open_detail(self, event: DataTable.RowSelected) -> None:
        """Enter on a run: its detail, paired against the best other entry of the leaderboard."""
        table = self.query_one("#eval-table", DataTable)
        keys = [str(row.key.value) for row in table.ordered_rows]
        chosen = str(event.row_key.value)
        self.app.push_screen(EvalDetail(chosen, [k for k in keys if k != chosen]))


def _split(key: str) -> tuple[str, str]:
    run, _, condition = key.rpartition("|")
    return run, condition


class EvalDetail(ReportsFailures, ModalScreen[None]):
    """One run's detail: its results per personality (`metrics.by_personality`) and McNemar's exact paired test
    (`metrics.paired`) against another run picked below; the episodes are read in a worker."""

    BINDINGS = [Binding("escape", "dismiss", "Close")]

    class Read(Message):
        """The run's breakdown and its paired test against `other` (None: no other run)."""

        def __init__(self, breakdown: dict[str, dict[str, Any]], test: dict[str, Any] | None) -> None:
            super().__init__()
            self.breakdown, self.test = breakdown, test

    def __init__(self, key: str, others: list[str]) -> None:
        super().__init__()
        self.key, self.others = key, others

    def compose(self) -> ComposeResult:
        run, condition = _split(self.key)
        with Vertical(classes="dialog eval-detail"):
            yield Label(Text.assemble((run, "bold"), f"  {condition}: results per personality"))
            table = DataTable(id="detail-personalities", cursor_type="none", zebra_stripes=True)
            table.add_columns("personality", "games", "success", "95% interval", "turns", "align", "lies", "ruled out")
            yield table
            with Horizontal(classes="filters"):
                yield Label("paired test against", classes="inline")
                yield Select([(k.replace("|", " "), k) for k in self.others], allow_blank=not self.others,
                             value=self.others[0] if self.others else Select.NULL, id="detail-other", compact=True)
            yield Label("reading the episodes...", id="detail-paired")
            with Horizontal(classes="buttons"):
                yield Button("Close (Esc)", id="detail-close", compact=True)

    def on_mount(self) -> None:
        self.read(self.others[0] if self.others else None)

    @on(Select.Changed, "#detail-other")
    def other_picked(self, event: Select.Changed) -> None:
        if event.value is not Select.NULL:
            self.read(str(event.value))

    @work(thread=True, exclusive=True, group="eval-detail", exit_on_error=False)
    def read(self, other: str | None) -> None:
        from engine.pipeline.leaderboard import entries_for_runs
        from engine.pipeline.metrics import by_personality, paired

        wanted = [self.key, *([other] if other else [])]
        names = list(dict.fromkeys(_split(k)[0] for k in wanted))
        with self.app.worker_store() as store:
            entries = {f"{e.run}|{e.condition}": e for e in entries_for_runs(store, names)}
        mine = entries.get(self.key)
        theirs = entries.get(other) if other else None
        breakdown = by_personality(mine.episodes) if mine else {}
        test = paired(mine.episodes, theirs.episodes) if mine and theirs else None
        self.post_message(self.Read(breakdown, test))

    def on_eval_detail_read(self, message: Read) -> None:
        from engine.pipeline.leaderboard import num, pct, told_text

        table = self.query_one("#detail-personalities", DataTable)
        table.clear()
        for personality, s in message.breakdown.items():
            rate, (lo, hi) = s["success"]["rate"], s["success"]["ci95"]
            table.add_row(personality, str(s["success"]["n"]), pct(rate), "-" if rate is None else f"{pct(lo)}–{pct(hi)}",
                          num(s["turns_to_success"]["mean"], 1), pct(s["preference_alignment"]["final"]),
                          str(s["violations"]), told_text(s))
        test = message.test
        other = str(self.query_one("#detail-other", Select).value).replace("|", " ")
        self.query_one("#detail-paired", Label).update(
            "no other run to pair with" if test is None else
            f"vs {other}: {test['pairs']} paired episode(s); both won {test['both']}, only this run "
            f"{test['only_a']}, only the other {test['only_b']}, neither {test['neither']}; McNemar exact "
            f"p = {test['p_value']:.3g}")

    @on(Button.Pressed, "#detail-close")
    def close(self) -> None:
        self.dismiss()
