"""Data: pick or generate a trajectory file, see its stats, preview a conversation, run prepare.

Everything is helper code from `engine/`: `trajectories.read_trajectories/summarise/generate_trajectories`
and `dataprep.turn_examples/sft_row/kto_row/prepare`. Reading, previewing (DPO pairs scan the file), generating and
preparing run in thread workers.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import RenderableType
from rich.markdown import Markdown
from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, ProgressBar, RichLog, Select
from textual.worker import Worker, WorkerState, get_current_worker

from engine.errors import LabError
from ptom_tui.messages import ReportsFailures
from ptom_tui.screens.dialogs import Confirm

if TYPE_CHECKING:
    from engine.pipeline.dataprep import PrepareOptions


class DataPane(ReportsFailures, Vertical):
    class FilesFound(Message):
        """The .jsonl files near the working folder, newest first, each with its kind (`file_kind`)."""

        def __init__(self, files: list[tuple[str, str]]) -> None:
            super().__init__()
            self.files = files

    class Loaded(Message):
        """A trajectory file read: its conversations, its bad lines (line, reason) and `summarise`'s stats."""

        def __init__(self, path: str, trajectories: list[Any], bad: list[tuple[int, str]], stats: dict) -> None:
            super().__init__()
            self.path, self.trajectories, self.bad, self.stats = path, trajectories, bad, stats

    class PreviewBuilt(Message):
        """One conversation's preview, as rows of the chosen format."""

        def __init__(self, items: list[RenderableType]) -> None:
            super().__init__()
            self.items = items

    class Progress(Message):
        """How far a generate or prepare is (`total` None: not known yet)."""

        def __init__(self, done: int, total: int | None) -> None:
            super().__init__()
            self.done, self.total = done, total

    class JobDone(Message):
        """A generate or prepare finished: what to say, the file to read again (generate) if any, and prepare's
        summary (`dataprep.prepare`: tokens per split, the longest examples, the price) with its training file."""

        def __init__(self, text: str, reload: str | None = None, summary: dict[str, Any] | None = None,
                     prepared: str = "") -> None:
            super().__init__()
            self.text, self.reload, self.summary, self.prepared = text, reload, summary, prepared

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trajectories: list[dict[str, Any]] = []
        self.kinds: dict[str, str] = {}  # found file -> its kind, as the list labels it

    def compose(self) -> ComposeResult:
        from engine.pipeline.dataprep import FORMATS  # here, after the first frame (the pane is lazy): not at start-up

        # compact rows: the preview keeps most of an 80x24 terminal
        with Horizontal(classes="filters"):
            yield Label("file", classes="inline")
            yield Input("trajectories.jsonl", placeholder="trajectory file", id="data-path", compact=True)
            yield Select([], prompt="found .jsonl", id="data-found", compact=True,
                         tooltip="trajectory files (load) and prepared training files, newest first")
            yield Button("Load", id="data-load", compact=True)
        with Horizontal(classes="filters"):
            yield Label("n", classes="inline")
            yield Input("20", placeholder="n", id="data-n", type="integer", compact=True,
                        tooltip="conversations to generate")
            yield Label("x", classes="inline")
            yield Input("1", id="data-repeats", type="integer", compact=True,
                        tooltip="repeats per scenario (2+ gives DPO pairs)")
            yield Button("Generate", id="data-generate", compact=True)
            yield Label("preview #", classes="inline")
            yield Input("1", id="data-index", type="integer", compact=True)
            yield Select([(f, f) for f in ("transcript", *FORMATS)], value="transcript", allow_blank=False, id="data-format",
                         compact=True)
        with Horizontal(classes="filters"):
            yield Label("prepare to", classes="inline")
            yield Input("training_data.jsonl", placeholder="prepare output", id="data-out", compact=True)
            yield Select([(f, f) for f in FORMATS], value="chatml", allow_blank=False, id="data-prep-format",
                         compact=True)
            yield Label("val", classes="inline")
            yield Input("0", id="data-val", type="number", compact=True,
                        tooltip="share of scenarios held out for validation (--val), e.g. 0.1")
            yield Checkbox("won only", id="data-only-successful", compact=True,
                           tooltip="keep only turns of successful conversations (--only-successful)")
            yield Input("", placeholder="test scenarios", id="data-test-scenarios", compact=True,
                        tooltip="held-out scenarios file: their conversations go to the test file only "
                                "(--test-scenarios)")
            yield Button("Prepare", id="data-prepare", compact=True)
        yield ProgressBar(total=1, id="data-progress", show_eta=False)
        yield Label("Load a trajectory file, or generate one with the planner.", id="data-stats")
        yield RichLog(id="data-preview", wrap=True, markup=False, min_width=20, auto_scroll=False, classes="panel")

    def on_mount(self) -> None:
        self.find_files()

    @work(thread=True, group="data-find", exit_on_error=False)
    def find_files(self) -> None:
        """Offer the .jsonl files near the working folder (two levels down at most, not the scenario sets in
        scenarios/), newest first."""
        found = [p for pattern in ("*.jsonl", "*/*.jsonl", "*/*/*.jsonl") for p in Path().glob(pattern)
                 if not any(part.startswith(".") or part == "scenarios" for part in p.parts)]  # not scenario sets
        found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        files = [(str(p), file_kind(p)) for p in found[:100]]
        files.sort(key=lambda f: f[1] != "trajectories")  # the files this pane loads first, each kind newest first
        self.post_message(self.FilesFound(files))

    def on_data_pane_files_found(self, message: FilesFound) -> None:
        self.kinds = dict(message.files)
        select = self.query_one("#data-found", Select)
        select.set_options([(Text(f"{kind}: {path}"), path) for path, kind in message.files])
        select.prompt = f"{len(message.files)} found" if message.files else "none found"

    @on(Select.Changed, "#data-found")
    def file_picked(self, event: Select.Changed) -> None:
        """A trajectory file is loaded; a prepared one is named, and where it is trained (it has no conversations)."""
        if event.value is Select.NULL:
            return
        path, kind = str(event.value), self.kinds.get(str(event.value), "")
        if kind.startswith("prepared"):
            self.query_one("#data-stats", Label).update(Text(
                f"{path}: a {kind} training file; train on it in the Training pane (Ctrl+T)"))
            return
        self.query_one("#data-path", Input).value = path
        self.load(path)

    def _value(self, selector: str) -> str:
        return str(self.query_one(selector).value or "").strip()

    # ----- load and stats -----------------------------------------------------------------------------
    @on(Button.Pressed, "#data-load")
    @on(Input.Submitted, "#data-path")
    def action_load(self) -> None:
        self.load(self._value("#data-path"))

    @work(thread=True, exclusive=True, group="data-read", exit_on_error=False)
    def load(self, path: str) -> None:
        """A file that cannot be read raises `LabError`: the app says why (`ReportsFailures`)."""
        from engine.pipeline.trajectories import TrajectoryReader, summarise

        try:
            reader = TrajectoryReader(path, skip_bad=True)
            trajectories = list(reader)
        except OSError as exc:
            raise LabError(f"cannot read {path}: {exc}") from exc
        self.post_message(self.Loaded(path, trajectories, reader.bad, summarise(trajectories)))

    def on_data_pane_loaded(self, message: Loaded) -> None:
        path, bad, stats = message.path, message.bad, message.stats
        self.trajectories = message.trajectories
        n, rate = stats["n"], stats["rate"] or 0.0
        moves = ", ".join(f"{k} {v}" for k, v in sorted(stats["moves"].items()))
        self.query_one("#data-stats", Label).update(Text(
            f"{path}: {n} conversation(s), success {rate:.0%}, {stats['turns']} turns"
            + (f", {len(bad)} bad line(s) (first: line {bad[0][0]}: {bad[0][1]})" if bad else "")
            + (f"\nmoves: {moves}" if moves else "")
        ))
        self.preview()

    # ----- preview --------------------------------------------------------------------------------------
    @on(Input.Submitted, "#data-index")
    @on(Select.Changed, "#data-format")
    def preview(self) -> None:
        if not self.trajectories:
            self._show_preview([])
            return
        text = self._value("#data-index")
        i = min(max(int(text) if text.isdigit() else 1, 1), len(self.trajectories)) - 1
        self.build_preview(self.trajectories, i, self._value("#data-format"))

    @work(thread=True, exclusive=True, group="data-preview", exit_on_error=False)
    def build_preview(self, trajectories: list[dict[str, Any]], i: int, fmt: str) -> None:
        """The rows of one conversation, built off the UI thread: DPO pairs it against up to 500 others.
        A newer preview cancels this one, and a cancelled one shows nothing."""
        items = _preview_items(trajectories, i, fmt)
        if not get_current_worker().is_cancelled:
            self.post_message(self.PreviewBuilt(items))

    def on_data_pane_preview_built(self, message: PreviewBuilt) -> None:
        self._show_preview(message.items)

    def _show_preview(self, items: list[RenderableType]) -> None:
        log = self.query_one("#data-preview", RichLog)
        log.clear()  # here, not when asked: whatever an older preview wrote just before goes too
        log.scroll_home(animate=False)
        for item in items:
            log.write(item)

    # ----- generate ---------------------------------------------------------------------------------------
    @on(Button.Pressed, "#data-generate")
    def action_generate(self) -> None:
        n, repeats = self._value("#data-n"), self._value("#data-repeats")
        path = self._value("#data-path") or "trajectories.jsonl"
        args = (path, int(n) if n.isdigit() else 20, max(1, int(repeats)) if repeats.isdigit() else 1)
        if Path(path).exists():  # generating writes the file anew: ask before losing one
            self.app.push_screen(Confirm(f"{path} exists. Replace it with {args[1]} new conversation(s)?"),
                                 lambda yes: self.generate(*args) if yes else None)
            return
        self.generate(*args)

    @work(thread=True, exclusive=True, group="data-job", exit_on_error=False)
    def generate(self, path: str, n: int, repeats: int = 1) -> None:
        """The engine's generate job, run in this worker (not a child): the bar moves with each conversation."""
        from engine.pipeline.jobs import generate_job, run
        from engine.pipeline.trajectories import GenerationPlan

        job = generate_job(GenerationPlan(n=n, repeats=repeats), path, self.app.db_path)
        made = run(job, say=lambda text: None, progress=lambda done, total: self.post_message(self.Progress(done, total)))
        self.post_message(self.JobDone(f"Generated {made['written']} conversation(s) into {path} (run {job.run}).",
                                       reload=path))

    # ----- prepare ----------------------------------------------------------------------------------------
    @on(Button.Pressed, "#data-prepare")
    def action_prepare(self) -> None:
        """The form as the engine's `PrepareOptions` (what `ptom-lab prepare` builds from its flags)."""
        from engine.pipeline.dataprep import PrepareOptions

        val = self._value("#data-val") or "0"
        try:
            share = float(val)
        except ValueError:
            share = -1.0
        if not 0 <= share < 1:
            self.app.notify(f"val is the share of scenarios held out, from 0 up to 1, not {val!r}",
                            title="Cannot prepare", severity="error")
            return
        self.prepare(PrepareOptions(
            input=self._value("#data-path"), output=self._value("#data-out"), format=self._value("#data-prep-format"),
            val=share, test_scenarios=self._value("#data-test-scenarios") or None, skip_bad=True,
            only_successful=bool(self.query_one("#data-only-successful", Checkbox).value)))

    @work(thread=True, exclusive=True, group="data-job", exit_on_error=False)
    def prepare(self, options: PrepareOptions) -> None:
        """The engine's prepare job, run in this worker: a few hundred bar updates at most."""
        from engine.pipeline.jobs import prepare_job, run

        def progress(done: int, total: int | None) -> None:
            if total is None or done == total or done % 50 == 0 or done >= total - 2:
                self.post_message(self.Progress(done, total))

        job = prepare_job(options, self.app.db_path)
        made = run(job, say=lambda text: None, progress=progress)
        files = ", ".join(f"{split}: {path} ({made['rows'].get(split, 0)} rows)" for split, path in made["files"].items())
        self.post_message(self.JobDone(f"Prepared {options.format} rows from {options.input}: {files}; "
                                       f"dataset {', '.join(made['datasets'])}.", summary=made["summary"],
                                       prepared=made["files"].get("train", "")))

    def on_data_pane_progress(self, message: Progress) -> None:
        self.query_one(ProgressBar).update(total=message.total, progress=message.done)

    def on_data_pane_job_done(self, message: JobDone) -> None:
        self.query_one(ProgressBar).update(total=1, progress=1)
        self.query_one("#data-stats", Label).update(Text(message.text))  # stays after the toast
        self.app.notify(message.text, timeout=10)
        if message.summary:
            self._show_preview([summary_text(message.summary, self.query_one("#data-preview", RichLog).size.width)])
        self.find_files()
        if message.prepared:
            from ptom_tui.screens.training import TrainingPane

            for pane in self.app.query(TrainingPane):  # the Training form offers the file just prepared
                pane.offer_data(message.prepared)
        if message.reload:
            self.app.sessions_changed()
            self.load(message.reload)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A failed generate or prepare empties the bar and says so where the last success was shown (the app,
        told by `ReportsFailures`, says why)."""
        if event.worker.group == "data-job" and event.state == WorkerState.ERROR:
            self.query_one(ProgressBar).update(total=1, progress=0)
            self.query_one("#data-stats", Label).update(Text(f"{event.worker.name} failed: {event.worker.error}",
                                                             style="red"))


def file_kind(path: Path) -> str:
    """What a found .jsonl file holds, from its first line: `trajectories` (conversations this pane loads) or
    `prepared FORMAT` (training rows `prepare` wrote); `other` when neither or unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            row = json.loads(fh.readline() or "null")
    except (OSError, ValueError):
        return "other"
    if not isinstance(row, dict):
        return "other"
    if "turns" in row:
        return "trajectories"
    for fmt, keys in (("dpo", ("chosen", "rejected")), ("kto", ("completion", "label")), ("sharegpt", ("conversations",)),
                      ("chat", ("messages",))):
        if all(k in row for k in keys):
            return f"prepared {fmt}"
    return "other"


def summary_text(summary: dict[str, Any], width: int) -> Text:
    """`prepare`'s summary as `ptom-lab prepare` prints it (`engine.cli.prepare.print_summary`: tokens per split, the
    longest examples, the price), rendered for the preview."""
    from rich.console import Console

    from engine.cli.prepare import print_summary

    buffer = io.StringIO()
    print_summary(summary, Console(file=buffer, width=max(width - 2, 60), force_terminal=True, color_system="truecolor"))
    return Text.from_ansi(buffer.getvalue())


def _preview_items(trajectories: list[dict[str, Any]], i: int, fmt: str) -> list[RenderableType]:
    """Conversation `i` of the file as `fmt`: its transcript, or its training rows from `engine.pipeline.dataprep`."""
    traj = trajectories[i]
    if fmt == "transcript":
        from engine.game.transcript import markdown

        return [Markdown(markdown(traj.to_trajectory()))]
    from engine.errors import LabError
    from engine.pipeline.dataprep import dpo_pairs, dpo_row, kto_row, sft_row, turn_examples

    try:
        if fmt == "dpo":  # pairs come from conversations that share a state: pair this one against the file
            mine = turn_examples(traj)
            others = [ex for t in trajectories[:500] if t is not traj for ex in turn_examples(t)]
            keys = {id(ex) for ex in mine}
            rows = [dpo_row(a, b) for a, b, _, _ in dpo_pairs([*mine, *others])
                    if id(a) in keys or id(b) in keys][:20]
        else:
            rows = [kto_row(ex) if fmt == "kto" else sft_row(ex, fmt) for ex in turn_examples(traj)]
    except (LabError, KeyError, ValueError, TypeError) as exc:  # an odd line: explain, keep the lab up
        return [f"conversation {i + 1} cannot become {fmt} rows: {type(exc).__name__}: {exc}"]
    what = ("pair(s) where one of its moves beat another from the same state (first 20)" if fmt == "dpo"
            else "row(s), one per persuader turn")
    items: list[RenderableType] = [f"conversation {i + 1} as {fmt}: {len(rows)} {what}"]
    if fmt == "dpo" and not rows:
        items.append("DPO pairs need conversations that reach the same state (same scenario, personality and "
                     "seed) and then differ: generate several with different planner settings into one file.")
    items += [Syntax(json.dumps(row, ensure_ascii=False, indent=1), "json", word_wrap=True) for row in rows]
    return items
