"""Training: follow any run in the store (started here or by `ptom-lab finetune` in another terminal), or start one.

Following is polling: once a second a thread worker reads `training_runs` and the new `training_steps` rows
(`engine.pipeline.training.runs`), posts them (`RunsRead`), and the pane draws the loss curve, progress, ETA, tokens/s and
the log tail. A run started here is an `engine.pipeline.jobs` finetune job built from the engine's own `TrainConfig`, in a
child process (its output goes to `OUTPUT/train.log`): training never shares the UI's process, goes on when the
lab quits, and records itself in the store like any other run. Improve runs (`ptom-lab improve`, started here with
the Improve button) are listed beside them; selecting one draws its validation success by round.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, HorizontalGroup, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, ProgressBar, RichLog, Select
from textual_plotext import PlotextPlot

from engine.errors import LabError
from engine.pipeline.improve import DATA_MODES, EI_TURNS
from engine.pipeline.training.config import METHODS
from engine.players.reply_schema import CONCLUDE_RULES, DISCLOSE_RULES
from ptom_tui.messages import ReportsFailures

if TYPE_CHECKING:
    from collections.abc import Callable

    from engine.pipeline.jobs import Job

POLL_S = 1.0
# plotext's default colour is its next one in a cycle, so a curve drawn twice changed colour (and the snapshot)
LINE_COLOR = "blue"


class TrainingPane(ReportsFailures, Vertical):
    class RunsRead(Message):
        """One poll of the store: the runs list, the followed run, its new steps and its log's last line."""

        def __init__(self, listing: list[dict[str, Any]], run: dict[str, Any] | None, new: list[dict[str, Any]],
                     log_line: str) -> None:
            super().__init__()
            self.listing, self.run, self.new, self.log_line = listing, run, new, log_line

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_id: str | None = None
        self.auto = True  # follow the newest run until the researcher picks one
        self.steps: list[dict[str, Any]] = []
        self.points: list[tuple[int, float]] = []  # an improve run's curve: (round, validation success %)
        self.last_step_id = 0
        self.form: dict[str, str] = {}  # the last form, offered again after a refused start
        self.improve_form: dict[str, str] = {}  # the same for the Improve form
        self.prepared = ""  # the training file Data > Prepare wrote last: the form's data field offers it

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
        with HorizontalGroup(id="training-buttons"):
            yield Button("New run (Ctrl+T)", id="training-new", compact=True)
            yield Button("Improve", id="training-improve", compact=True)

    def on_mount(self) -> None:
        plt = self.query_one(PlotextPlot).plt
        plt.title("loss")
        self.poll()
        self.set_interval(POLL_S, self.poll)

    def poll(self) -> None:
        self.read_store(self.run_id, self.last_step_id)

    @work(thread=True, exclusive=True, group="training-poll", exit_on_error=False)
    def read_store(self, run_id: str | None, after: int) -> None:
        from engine.pipeline import improve
        from engine.pipeline.training import runs

        with self.app.worker_store() as store:
            # a run without final metrics (running, stopped) shows the loss of its latest logged step
            listing = [r if r.get("metrics_json") else {**r, "step_loss": store.latest_training_step(r["id"])[1]}
                       for r in runs.list_runs(store, 50)]
            listing = sorted(listing + improve.run_rows(store), key=lambda r: r["created_at"], reverse=True)
            found = improve.find_run(store, run_id) if run_id else None
            try:
                if found:  # an improve run: its rounds are what the pane draws
                    run = {**found, "curve": improve.curve(store, found["id"])}
                else:
                    run = runs.get_run(store, run_id) if run_id else None
            except LabError:  # deleted meanwhile: follow the newest again
                run, self.auto = None, True
            new = store.training_steps(run_id, after) if run and not found else []
        log_line = _log_tail(Path(run["output_dir"]) / "train.log") if run and run.get("output_dir") else ""
        self.post_message(self.RunsRead(listing, run, new, log_line))

    def on_training_pane_runs_read(self, message: RunsRead) -> None:
        self._show(message.listing, message.run, message.new, message.log_line)

    def _show(self, listing: list[dict[str, Any]], run: dict[str, Any] | None, new: list[dict[str, Any]],
              log_line: str = "") -> None:
        from engine.pipeline.training.runs import (  # the ETA as `finetune` and `runs follow` print it
            duration,
            format_step,
        )

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
        # until a run is picked, follow the one training now (the newest of them), else the newest run
        newest = next((r for r in listing if r["status"] == "running"), listing[0]) if listing else None
        if self.auto and newest and newest["id"] != self.run_id:
            self.follow(newest["id"])
            return
        if run is None or run["id"] != self.run_id:
            return
        if "curve" in run:
            self._show_improve(run)
            return
        total = run["total_steps"] or None
        log = self.query_one("#training-log", RichLog)
        for row in new:
            if row["id"] <= self.last_step_id:  # a poll that overlapped the previous one read these rows too
                continue
            self.steps.append(row)
            self.last_step_id = row["id"]  # rows come in id order (`Store.training_steps`)
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
            plt.plot([p[0] for p in points], [p[1] for p in points], marker="braille", color=LINE_COLOR)
        plt.title(f"loss · {self.run_id}")
        plot.refresh()

    def _show_improve(self, run: dict[str, Any]) -> None:
        """An improve run: validation success by round, as a curve and as the text `ptom-lab runs show` prints."""
        from engine.pipeline.improve import curve_lines

        rounds = run["curve"]
        trained = sum(1 for r in rounds if r["round"] > 0 and r["status"] == "finished")
        self.query_one(ProgressBar).update(total=run["rounds"], progress=trained)
        self.query_one("#training-status", Label).update(Text.assemble(
            (f"{run['id']}  improve  {run['status']}\n", "bold"),
            "validation success by round\n" + "\n".join(curve_lines(rounds, width=10)),
            (f"\n{run['error']}" if run.get("error") else "", "red"),
        ))
        points = [(r["round"], 100 * r["rate"]) for r in rounds if r["rate"] is not None]
        if points == self.points:
            return
        self.points = points
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        if points:
            plt.plot([p[0] for p in points], [p[1] for p in points], marker="braille", color=LINE_COLOR)
            plt.xticks([p[0] for p in points])
        plt.ylim(0, 100)
        plt.title(f"validation success % by round · {run['id']}")
        plot.refresh()

    def follow(self, run_id: str) -> None:
        """Show `run_id` from its first step on."""
        self.run_id, self.steps, self.points, self.last_step_id = run_id, [], [], 0
        self.query_one("#training-log", RichLog).clear()
        # a whole new figure: an improve run's curve sets its own ticks and range, which a loss curve must not keep
        self.query_one(PlotextPlot).plt.clear_figure()
        self.poll()

    @on(DataTable.RowSelected, "#training-runs")
    def run_selected(self, event: DataTable.RowSelected) -> None:
        self.auto = False
        self.follow(str(event.row_key.value))

    @on(Button.Pressed, "#training-new")
    def action_new_run(self) -> None:
        values = {"data": self.prepared, **self.form} if self.prepared else self.form
        self.app.push_screen(NewRunForm(values), self.start_run)

    def offer_data(self, path: str) -> None:
        """Data > Prepare just wrote `path`: the next form's training file is that one, in place of a remembered
        one (the researcher prepared it to train on it)."""
        self.prepared = path
        self.form.pop("data", None)

    def start_run(self, form: dict[str, str] | None) -> None:
        """A finetune job from the form, in a child process; the store tells us the rest. Refused settings say why
        and keep the form's values for the next Ctrl+T."""
        if not form:
            return
        self.form = form
        started = self._launch(form, self.job, "train.log", "Cannot train", "Ctrl+T")
        if started:
            job, process, log = started
            self.form = {}
            self.app.notify(f"Training started (pid {process.pid}): {job.settings.method} on {job.settings.data}; "
                            f"its output goes to {log}")

    def _launch(self, form: dict[str, str], make_job: Callable[[dict[str, str]], Job], log_name: str, title: str,
                again: str) -> tuple[Job, Any, Path] | None:
        """A form's job started in a child process (followed as soon as it is in the store), or None when its
        settings are refused: the notice says why, and `again` reopens the form with the researcher's values."""
        try:
            job = make_job(form)
        except LabError as exc:
            self.app.notify(f"{exc} ({again} opens the form again with your values)", title=title,
                            severity="error", timeout=10)
            return None
        log = Path(job.run) / log_name
        process = self.app.start_job(job, log, self)
        self.auto = True
        return job, process, log

    def job(self, form: dict[str, str]) -> Job:
        """The form as the engine's own `TrainConfig` (validated, the YAML config file under it) and its job."""
        from engine.pipeline.jobs import finetune_job
        from engine.pipeline.training.config import load_config
        from engine.pipeline.training.runs import new_output_dir

        overrides = {"data": form["data"], "output": form["output"] or new_output_dir(), "method": form["method"],
                     "model": form["model"] or None, "max_steps": _number(form, "max_steps", int),
                     "batch_size": _number(form, "batch_size", int), "max_seq_len": _number(form, "max_seq_len", int),
                     "lr": _number(form, "lr", float)}
        config = load_config(form.get("config") or None, overrides)
        return finetune_job(config, self.app.db_path)

    @on(Button.Pressed, "#training-improve")
    def action_improve(self) -> None:
        self.app.push_screen(ImproveForm(self.improve_form), self.start_improve)

    def start_improve(self, form: dict[str, str] | None) -> None:
        """An improve job from the form, in a child process (output in OUT/improve.log); refused settings say why
        and keep the form's values for the next press."""
        if not form:
            return
        self.improve_form = form
        started = self._launch(form, self.improve_job, "improve.log", "Cannot improve", "Improve")
        if started:
            job, process, log = started
            self.improve_form = {}
            cfg = job.settings
            self.app.notify(f"Improve started (pid {process.pid}): {cfg.rounds} round(s) of {cfg.data} from "
                            f"{cfg.adapter}; its output goes to {log}")

    def improve_job(self, form: dict[str, str]) -> Job:
        """The form as the engine's own `ImproveConfig` (checked: a bad value is refused here) and its job."""
        import time

        from engine.pipeline.improve import ImproveConfig
        from engine.pipeline.jobs import improve_job

        numbers = {key: _number(form, key, int) for key in ("rounds", "games_per_scenario", "steps", "n_train", "n_val")}
        config = ImproveConfig(out=form["out"] or f"models/improve-{time.strftime('%Y%m%d-%H%M%S')}",
                               adapter=form["adapter"] or "embedded", data=form["data"],
                               expert_data=form.get("expert_data") or None, conclude=form.get("conclude") or "any",
                               disclose=form.get("disclose") or "any", ei_turns=form.get("ei_turns") or "all",
                               **{k: v for k, v in numbers.items() if v is not None})
        return improve_job(config, self.app.db_path)


def _number(form: dict[str, str], key: str, kind: type) -> Any:
    """A form's number field: None when blank, a LabError naming the field when it is not a number."""
    try:
        return kind(form[key]) if form.get(key) else None
    except ValueError:
        raise LabError(f"{key.replace('_', ' ')}: not a number: {form[key]!r}") from None


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
    """The run's last (or final) training loss from `metrics_json`, else (while it trains) its latest logged
    step's loss (`step_loss`, read by the poll), as the runs table shows it."""
    metrics = json.loads(row.get("metrics_json") or "{}")
    loss = metrics.get("last_loss", metrics.get("train_loss", row.get("step_loss")))
    return "-" if loss is None else f"{loss:.3f}"


class NewRunForm(ModalScreen[dict[str, str] | None]):
    """The settings a CPU or GPU run needs most; a YAML config file gives the rest (the form's fields win)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]
    FORM_TITLE = "[b]New training run[/b] (in the background; it goes on if the lab quits)"
    CHOICES: tuple[tuple[str, str, tuple[str, ...]], ...] = (("method", "method", METHODS),)  # id, label, options
    FIELDS = (  # id, label, placeholder, Input type
        ("data", "training file", "e.g. training_data.jsonl", "text"),
        ("output", "output folder", "blank: a new models/run-DATE-TIME", "text"),
        ("config", "config file", "blank: none (e.g. configs/sft.yaml)", "text"),
        ("model", "base model", "blank: embedded SmolLM2", "text"),
        ("max_steps", "max steps", "blank: one epoch", "integer"),
        ("batch_size", "batch size", "blank: config or 1", "integer"),
        ("max_seq_len", "sequence length", "blank: config or 1024", "integer"),
        ("lr", "learning rate", "blank: config or 2e-4", "number"),
    )

    def __init__(self, values: dict[str, str] | None = None) -> None:
        super().__init__()
        self.values = dict(values or {})

    def compose(self) -> ComposeResult:
        # one compact row per field, so the whole form fits an 80x24 terminal
        keys = [key for key, *_ in self.FIELDS]
        if "data" in keys and not self.values.get("data") and Path("training_data.jsonl").exists():
            self.values["data"] = "training_data.jsonl"  # what Data > Prepare wrote
        with Vertical(classes="dialog"):
            yield Label(self.FORM_TITLE)
            with Grid(classes="form"):
                for key, label, placeholder, kind in self.FIELDS:
                    yield Label(label)
                    yield Input(self.values.get(key, ""), placeholder=placeholder, id=f"form-{key}", type=kind,
                                compact=True)
                for choice, choice_label, options in self.CHOICES:
                    yield Label(choice_label)
                    yield Select([(m, m) for m in options], value=self.values.get(choice, options[0]),
                                 allow_blank=False, id=f"form-{choice}", compact=True)
            with Horizontal(classes="buttons"):
                yield Button("Start", id="form-start", variant="primary", compact=True)
                yield Button("Cancel", id="form-cancel", compact=True)

    @on(Button.Pressed, "#form-cancel")
    def cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#form-start")
    def start(self) -> None:
        keys = [key for key, *_ in self.FIELDS] + [key for key, *_ in self.CHOICES]
        self.dismiss({key: str(self.query_one(f"#form-{key}").value or "").strip() for key in keys})


class ImproveForm(NewRunForm):
    """`ptom-lab improve` from the Training pane: the settings a run needs most (the CLI takes every one)."""

    FORM_TITLE = "[b]Improve: the model learns from its own games[/b] (in the background)"
    CHOICES = (("data", "learn from", DATA_MODES),
               ("conclude", "conclude", CONCLUDE_RULES),  # stated: only right after the target named the goal
               ("disclose", "disclose", DISCLOSE_RULES),  # stated: none the target's stated preferences rule out
               ("ei_turns", "won games' turns", EI_TURNS))  # to_win: only up to the target naming the goal
    FIELDS = (
        ("adapter", "start adapter", "blank: embedded SmolLM2 (untrained)", "text"),
        ("out", "output folder", "blank: a new models/improve-DATE-TIME", "text"),
        ("expert_data", "expert rows", "blank: none; e.g. data/train.jsonl, mixed into every round", "text"),
        ("rounds", "rounds", "blank: 3", "integer"),
        ("games_per_scenario", "games per scenario", "blank: 2", "integer"),
        ("steps", "steps per round", "blank: 20", "integer"),
        ("n_train", "training scenarios", "blank: 20 generated", "integer"),
        ("n_val", "validation scenarios", "blank: 20 generated", "integer"),
    )
