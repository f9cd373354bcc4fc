"""Training: follow any run in the store (started here or by `ptom-lab finetune` in another terminal), or start one.

Following is polling: once a second a thread worker reads `training_runs` and the new `training_steps` rows
(`engine.training.runs`), and the pane draws the loss curve, progress, ETA, tokens/s and the log tail.
A run started here is `ptom-lab finetune` in a child process (its output goes to `OUTPUT/train.log`): training
never shares the UI's process, and it records itself in the store like any other run.
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
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, ProgressBar, RichLog, Select
from textual_plotext import PlotextPlot

POLL_S = 1.0


class TrainingPane(Vertical):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_id: str | None = None
        self.auto = True  # follow the newest run until the researcher picks one
        self.steps: list[dict[str, Any]] = []
        self.last_step_id = 0
        self.children_started: list[subprocess.Popen] = []

    def compose(self) -> ComposeResult:
        table = DataTable(id="training-runs", cursor_type="row")
        table.add_columns("id", "status", "method", "steps", "loss", "base model")
        yield table
        with Horizontal(id="training-body"):
            yield PlotextPlot(id="training-plot")
            with Vertical(id="training-side", classes="sidebar"):
                yield Label("no run selected", id="training-status")
                yield ProgressBar(total=1, id="training-progress", show_eta=False)
                yield RichLog(id="training-log", wrap=True, markup=False, max_lines=200, min_width=20)
        yield Button("New run (Ctrl+T)", id="training-new", compact=True)

    def on_mount(self) -> None:
        plt = self.query_one(PlotextPlot).plt
        plt.title("loss")
        self.poll()
        self.set_interval(POLL_S, self.poll)

    def poll(self) -> None:
        self.read_store(self.run_id, self.last_step_id)

    @work(thread=True, exclusive=True, group="training-poll", exit_on_error=False)
    def read_store(self, run_id: str | None, after: int) -> None:
        from engine.errors import LabError
        from engine.training import runs

        with self.app.worker_store() as store:
            listing = runs.list_runs(store, 50)
            try:
                run = runs.get_run(store, run_id) if run_id else None
            except LabError:  # deleted meanwhile: follow the newest again
                run, self.auto = None, True
            new = runs.steps(store, run_id, after) if run else []
        log_line = _log_tail(Path(run["output_dir"]) / "train.log") if run and run.get("output_dir") else ""
        self.app.call_from_thread(self._show, listing, run, new, log_line)

    def _show(self, listing: list[dict[str, Any]], run: dict[str, Any] | None, new: list[dict[str, Any]],
              log_line: str = "") -> None:
        from engine.training.runs import duration, format_step  # the ETA as `finetune` and `runs follow` print it

        table = self.query_one("#training-runs", DataTable)
        cells = [(r["id"], r["status"], r["method"] or "", str(r["total_steps"] or "?"),
                  _loss(r), r["base_model"] or "") for r in listing]
        current = [tuple(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]
        if current != [tuple(str(c) for c in row) for row in cells]:
            cursor = table.cursor_row
            table.clear()
            for row in cells:
                table.add_row(*row, key=row[0])
            if table.row_count:
                table.move_cursor(row=min(cursor, table.row_count - 1))
        if self.auto and listing and listing[0]["id"] != self.run_id:
            self.follow(listing[0]["id"])
            return
        if run is None or run["id"] != self.run_id:
            return
        total = run["total_steps"] or None
        log = self.query_one("#training-log", RichLog)
        for row in new:
            if row["id"] <= self.last_step_id:  # a poll that overlapped the previous one read these rows too
                continue
            self.steps.append(row)
            self.last_step_id = row["id"]  # rows come in id order (`runs.steps`)
            log.write(format_step(row, total))
        last = self.steps[-1] if self.steps else {}
        bar = self.query_one(ProgressBar)
        bar.update(total=total, progress=last.get("step") or 0)
        tps = last.get("tokens_per_s")
        self.query_one("#training-status", Label).update(Text.assemble(
            (f"{run['id']}  {run['status']}\n", "bold"),
            f"step {last.get('step', 0)}/{total or '?'}  eta {duration(last.get('eta_s'))}"
            f"  {'-' if tps is None else f'{tps:.0f}'} tok/s",
            (f"\n{run['error']}" if run.get("error") else "", "red"),
            (f"\nlog: {log_line}" if log_line else "", "dim"),
        ))
        if new:
            self._plot()

    def _plot(self) -> None:
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        points = [(r["step"], r["loss"]) for r in self.steps if r["loss"] is not None and r["step"] is not None]
        if points:
            plt.plot([p[0] for p in points], [p[1] for p in points], marker="braille")
        plt.title(f"loss · {self.run_id}")
        plot.refresh()

    def follow(self, run_id: str) -> None:
        """Show `run_id` from its first step on."""
        self.run_id, self.steps, self.last_step_id = run_id, [], 0
        self.query_one("#training-log", RichLog).clear()
        self.query_one(PlotextPlot).plt.clear_data()
        self.poll()

    @on(DataTable.RowSelected, "#training-runs")
    def run_selected(self, event: DataTable.RowSelected) -> None:
        self.auto = False
        self.follow(str(event.row_key.value))

    @on(Button.Pressed, "#training-new")
    def action_new_run(self) -> None:
        self.app.push_screen(NewRunForm(), self.start_run)

    def start_run(self, form: dict[str, str] | None) -> None:
        """`ptom-lab finetune` in a child process; the store tells us the rest."""
        if not form:
            return
        if not form["data"] or not Path(form["data"]).exists():
            self.app.notify(f"No training file '{form['data']}': make one in the Data pane (prepare).",
                            severity="error", timeout=10)
            return
        output = Path(form["output"] or "models/tui-run")
        output.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "engine", "finetune", "--db", self.app.db_path, "--data", form["data"],
               "--output", str(output), "--method", form["method"]]
        if form["model"]:
            cmd += ["--model", form["model"]]
        if form["max_steps"]:
            cmd += ["--max-steps", form["max_steps"]]
        log_path = output / "train.log"
        with open(log_path, "w", encoding="utf-8") as log:  # the child keeps its own handle
            child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        self.children_started.append(child)
        self.app.notify(f"Training started: {' '.join(cmd[2:])}; its output goes to {log_path}")
        self.auto = True  # follow the new run as soon as it is in the store
        self.watch_child(child, log_path)

    @work(thread=True, group="training-child", exit_on_error=False)
    def watch_child(self, child: subprocess.Popen, log_path: Path) -> None:
        """A run that fails (a bad file, a missing model) says why in a notification; its log has the rest."""
        if child.wait() == 0:
            return
        lines = [x for x in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
        reason = lines[-1] if lines else f"finetune exited {child.returncode}"
        self.app.call_from_thread(self.app.notify, f"{reason}\n(full output: {log_path})", title="Training failed",
                                  severity="error", timeout=20)


def _log_tail(path: Path) -> str:
    """The last line the trainer printed to OUTPUT/train.log (progress bars end lines with \\r), if it has one."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 4096))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [x.strip() for x in text.replace("\r", "\n").split("\n") if x.strip()]
    return lines[-1][:200] if lines else ""


def _loss(row: dict[str, Any]) -> str:
    """The run's last (or final) training loss from `metrics_json`, as the runs table shows it."""
    metrics = json.loads(row.get("metrics_json") or "{}")
    loss = metrics.get("last_loss", metrics.get("train_loss"))
    return "-" if loss is None else f"{loss:.3f}"


class NewRunForm(ModalScreen[dict[str, str] | None]):
    """The few settings a CPU or GPU run needs; everything else keeps the `finetune` defaults."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def compose(self) -> ComposeResult:
        # one compact row per field, so the whole form fits an 80x24 terminal
        data = "training_data.jsonl" if Path("training_data.jsonl").exists() else ""  # what Data > Prepare wrote
        with Vertical(classes="dialog"):
            yield Label("[b]New training run[/b] (ptom-lab finetune, in the background)")
            with Grid(classes="form"):
                yield Label("training file")
                yield Input(data, placeholder="e.g. training_data.jsonl", id="form-data", compact=True)
                yield Label("output folder")
                yield Input("models/tui-run", placeholder="e.g. models/my-run", id="form-output", compact=True)
                yield Label("base model")
                yield Input(placeholder="blank: embedded SmolLM2", id="form-model", compact=True)
                yield Label("method")
                yield Select([("sft", "sft"), ("kto", "kto"), ("dpo", "dpo")], value="sft", allow_blank=False,
                             id="form-method", compact=True)
                yield Label("max steps")
                yield Input(placeholder="blank: one epoch", id="form-steps", type="integer", compact=True)
            with Horizontal(classes="buttons"):
                yield Button("Start", id="form-start", variant="primary", compact=True)
                yield Button("Cancel", id="form-cancel", compact=True)

    @on(Button.Pressed, "#form-cancel")
    def cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#form-start")
    def start(self) -> None:
        def value(selector: str) -> str:
            return str(self.query_one(selector).value or "").strip()

        self.dismiss({"data": value("#form-data"), "output": value("#form-output"), "model": value("#form-model"),
                      "method": value("#form-method"), "max_steps": value("#form-steps")})
