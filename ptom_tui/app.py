"""`ptom-lab` with no arguments: the lab as a Textual app on the session store.

The app only composes the panes; each pane drives `engine/` from thread workers and opens its own `Store` there
(sqlite connections are per thread). Nothing here imports torch or transformers: panes import engine modules
inside their workers, so the first paint does not wait for them.
Long work (training, evaluation) is an `engine.pipeline.jobs.Job` in a child process: the app keeps the ones it started,
polls them without blocking, tells the pane that started one when it ends (`JobEnded`), shows a failure's log in
full, and on quit says which runs go on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.lazy import Lazy
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Header, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from engine.errors import LabError
from ptom_tui.messages import JobEnded, WorkerFailed
from ptom_tui.screens.arena import ArenaPane
from ptom_tui.screens.data import DataPane
from ptom_tui.screens.dialogs import Confirm, ErrorScreen
from ptom_tui.screens.evaluation import EvaluationPane
from ptom_tui.screens.help import HelpScreen
from ptom_tui.screens.sessions import SessionsPane
from ptom_tui.screens.training import TrainingPane

if TYPE_CHECKING:
    from engine.pipeline.jobs import Job, JobProcess
    from engine.store import Store

JOB_POLL_S = 1.0

PANES = (("arena", "Arena", "f2"), ("data", "Data", "f3"), ("training", "Training", "f4"),
         ("evaluation", "Evaluation", "f5"), ("sessions", "Sessions", "f6"))

PANE_CLASSES = {"arena": ArenaPane, "data": DataPane, "training": TrainingPane, "evaluation": EvaluationPane,
                "sessions": SessionsPane}
# pane, action, key (app-wide; '' = palette only), footer text, palette title, palette help
ACTIONS = (
    ("arena", "new_game", "ctrl+n", "New game", "New game", "show the arena setup (Ctrl+N)"),
    ("arena", "play", "", "", "Play", "start a game with the arena settings"),
    ("arena", "cancel", "", "", "Cancel the game", "end the running game as interrupted (Escape)"),
    ("data", "load", "ctrl+l", "Load", "Load trajectories", "read the trajectory file and show its stats (Ctrl+L)"),
    ("data", "generate", "ctrl+g", "Generate", "Generate trajectories", "play N planner conversations into the file (Ctrl+G)"),
    ("data", "prepare", "ctrl+r", "Prepare", "Prepare training data", "turn the trajectories into training rows (Ctrl+R)"),
    ("training", "new_run", "ctrl+t", "Train", "New training run", "start a training run from a form, in the background (Ctrl+T)"),
    ("evaluation", "launch", "ctrl+e", "Evaluate", "Evaluate", "evaluate with the pane's settings, in the background (Ctrl+E)"),
    ("sessions", "search", "", "", "Search sessions", "full-text search over messages (/)"),
    ("sessions", "open", "", "", "Replay session", "replay the selected session turn by turn (o)"),
    ("sessions", "archive", "", "", "Archive session", "hide the selected session, after a yes (a)"),
    ("sessions", "refresh", "", "", "Refresh sessions", "read the store again (r)"),
    ("sessions", "next_page", "", "", "Next page of sessions", "the next 100 sessions (n)"),
    ("sessions", "previous_page", "", "", "Previous page of sessions", "the previous 100 sessions (p)"),
    ("sessions", "clear_filters", "", "", "Clear session filters", "show every session again"),
)


class LabApp(App):
    CSS_PATH = "theme.tcss"
    TITLE = "PToM Lab"
    BINDINGS = [
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),  # typed into a focused Input, it is just a '?'
        *(Binding(key, f"show_pane('{pane}')", title, show=False) for pane, title, key in PANES),
        # Each pane key twice: shown in the footer while its pane is in front, hidden (but working) elsewhere.
        *(Binding(key, f"pane('{pane}', '{action}')", short, priority=True)
          for pane, action, key, short, _, _ in ACTIONS if key),
        *(Binding(key, f"pane_elsewhere('{pane}', '{action}')", short, show=False, priority=True)
          for pane, action, key, short, _, _ in ACTIONS if key),
        Binding("escape", "cancel_game", "Cancel game", show=False),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(self, db: str | None = None) -> None:
        super().__init__()
        from engine.store import Store, default_db_path

        self.db_path = str(db or default_db_path())
        self.main_store = Store(self.db_path)  # the UI thread's own connection; workers open theirs
        self.sub_title = self.db_path
        self.jobs: list[tuple[JobProcess, Widget]] = []  # started here and still running, with their owner

    def on_mount(self) -> None:
        self.set_interval(JOB_POLL_S, self.poll_jobs)

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="arena"):
            yield TabPane("Arena", ArenaPane(), id="arena")
            # the hidden panes mount just after the first frame, so it is not held up by their widgets
            yield TabPane("Data", Lazy(DataPane()), id="data")
            yield TabPane("Training", Lazy(TrainingPane()), id="training")
            yield TabPane("Evaluation", Lazy(EvaluationPane()), id="evaluation")
            yield TabPane("Sessions", Lazy(SessionsPane()), id="sessions")
        yield Footer()

    @contextmanager
    def worker_store(self) -> Iterator[Store]:
        """A `Store` of the app's database for the calling thread worker, closed when the block ends.

        sqlite connections are per thread, so each worker opens its own; this is the one place that does it."""
        from engine.store import Store

        store = Store(self.db_path)
        try:
            yield store
        finally:
            store.close()

    @property
    def main(self) -> Screen:
        """The screen with the panes, even while a replay or a dialog is on top."""
        return self.screen_stack[0]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Pane keys act on the main screen only: hidden (not in the footer) under a replay or a dialog."""
        if action in ("pane", "pane_elsewhere", "show_pane", "cancel_game") and self.screen is not self.main:
            return False
        if action in ("pane", "pane_elsewhere"):
            # the footer has room for the keys of the pane in front only; the others still work
            tabs = self.main.query(TabbedContent)
            in_front = bool(tabs) and tabs.first().active == parameters[0]
            return in_front if action == "pane" else not in_front
        return True

    def on_tabbed_content_tab_activated(self) -> None:
        self.refresh_bindings()  # the footer shows the keys of the pane now in front

    def action_show_pane(self, pane: str) -> None:
        tabs = self.main.query_one(TabbedContent)
        if tabs.active == pane:  # already in front (a pane key pressed in its own pane): the focus stays put
            return
        # Focus left inside the old pane would pull it back to the front: let go of it first.
        self.main.set_focus(None)
        tabs.active = pane
        self.call_after_refresh(self._focus_pane, tabs)

    def _focus_pane(self, tabs: TabbedContent) -> None:
        """Keys of the pane just shown work at once: focus its first focusable widget."""
        pane = tabs.active_pane
        if pane is None or self.focused is not None:  # an action already chose what to focus
            return
        tables = pane.query(DataTable)
        for widget in [*tables, *pane.query("*")]:
            if widget.focusable and widget.display and widget.visible:
                widget.focus()
                return

    def action_cancel_game(self) -> None:
        """Escape anywhere on the main screen stops a running arena game (modals take Escape first)."""
        self.main.query_one(ArenaPane).action_cancel()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The app's own workers; the panes' come as `WorkerFailed`."""
        if event.state == WorkerState.ERROR:
            self.show_failure(event.worker)

    def on_worker_failed(self, message: WorkerFailed) -> None:
        self.show_failure(message.worker)

    def show_failure(self, worker: Worker) -> None:
        """A worker that failed says why; the app goes on (workers never crash it). A `LabError` is one line that
        says it all (a notification); anything else opens its whole traceback."""
        error = worker.error
        if isinstance(error, LabError):
            self.notify(str(error), title="Something failed", severity="error", timeout=15)
            return
        import traceback

        detail = "".join(traceback.format_exception(error)) if isinstance(error, BaseException) else str(error)
        self.push_screen(ErrorScreen(f"{worker.name or 'A worker'} failed: {type(error).__name__}", detail))

    # ----- jobs in child processes ----------------------------------------------------------------------------
    def start_job(self, job: Job, log: str | Path, owner: Widget) -> JobProcess:
        """Run `job` in a child process; `owner` hears `JobEnded` when it ends. The child outlives the app."""
        from engine.pipeline.jobs import start

        process = start(job, log)
        self.jobs.append((process, owner))
        return process

    def running_jobs(self) -> list[JobProcess]:
        return [process for process, _ in self.jobs if process.poll() is None]

    def poll_jobs(self) -> None:
        """Never blocks (a thread waiting on a child would hold the app's exit until training ends)."""
        for process, owner in list(self.jobs):
            code = process.poll()
            if code is None:
                continue
            self.jobs.remove((process, owner))
            owner.post_message(JobEnded(process, code))
            if code:
                self.push_screen(ErrorScreen(f"{process.job.describe()} failed (exit {code}); log {process.log}",
                                             process.output()))

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Plain text by default: messages carry paths, errors and log lines, and a stray `[/x]` in one must
        not be read as markup (that would raise inside the handler that reports an error)."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        """With runs started here still going: ask, then exit at once; they go on (their own process session)."""
        running = self.running_jobs()
        if not running:
            self.exit()
            return
        names = self._run_names(running)
        question = "Still running, started here:\n  " + "\n  ".join(names) + "\nQuit? They go on in the background."

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit(message="Still running in the background: " + "; ".join(names))

        self.push_screen(Confirm(question, yes="Quit (y)"), answered)

    def _run_names(self, running: list[JobProcess]) -> list[str]:
        """Each running job as the store knows it: a training run by its id once it has one."""
        from engine.pipeline.training import runs

        names = []
        for process in running:
            name = process.job.describe()
            if process.job.kind == "finetune":
                try:
                    run = runs.get_run(self.main_store, process.job.run)
                    name = f"training run {run['id']} (follow it: ptom-lab runs follow {run['id']})"
                except LabError:  # still loading its model: no row yet
                    pass
            names.append(f"{name}, pid {process.pid}, log {process.log}")
        return names

    def sessions_changed(self) -> None:
        """A game or a generation just ended: the Sessions table shows it without a manual refresh."""
        for pane in self.main.query(SessionsPane):  # not there yet in the first instant: it loads fresh anyway
            pane.refresh_rows()

    def action_pane(self, pane: str, action: str) -> None:
        """Run a pane's action from anywhere (a key or the palette): show the pane, then act."""
        self.action_show_pane(pane)
        found = self.main.query(PANE_CLASSES[pane])
        if not found:  # the panes behind the first mount just after the first frame
            self.call_after_refresh(self.action_pane, pane, action)
            return
        getattr(found.first(), f"action_{action}")()

    def action_pane_elsewhere(self, pane: str, action: str) -> None:
        """The same as `pane`, for a key pressed while another pane is in front."""
        self.action_pane(pane, action)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every action by name in the command palette (Ctrl+P)."""
        yield from super().get_system_commands(screen)
        for pane, title, key in PANES:
            yield SystemCommand(f"Go to {title}", f"show the {title} pane ({key.upper()})",
                                lambda pane=pane: self.action_show_pane(pane))
        if hasattr(screen, "palette_commands"):  # a replay: its own actions first
            yield from screen.palette_commands()
        else:
            for pane, action, _, _, title, text in ACTIONS:
                yield SystemCommand(title, text, lambda pane=pane, action=action: self.action_pane(pane, action))
        yield SystemCommand("Help", "keys and panes (F1 or ?)", self.action_help)

    def on_unmount(self) -> None:
        self.main_store.close()


def run(db: str | None = None) -> int:
    """Open the lab on `db` (default: $PTOM_DB or sessions.db); returns the exit code."""
    if db:
        Path(db).parent.mkdir(parents=True, exist_ok=True)
    LabApp(db).run()
    return 0
