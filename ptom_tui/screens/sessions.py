"""Sessions: every stored game (arena, play, evaluation, generated), a page at a time, with a replay screen.

Rows come from `Store.list_sessions(limit, offset)`, so 100,000 sessions cost one page of rows, never all of
them; counting and FTS search are the store's. Queries run in a thread worker with its own `Store`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.suggester import SuggestFromList
from textual.widgets import DataTable, Footer, Header, Input, Label, Select
from textual.worker import get_current_worker

from engine.errors import LabError
from engine.store import session_outcome
from ptom_tui.messages import ReportsFailures
from ptom_tui.screens.dialogs import Confirm
from ptom_tui.widgets.belief import BeliefPanel
from ptom_tui.widgets.transcript import Transcript

PAGE = 100
KINDS = ("arena", "play", "evaluate", "generate", "import")
COLUMNS = ("id", "outcome", "turns", "scenario", "persuader", "target", "kind", "when (UTC)")


def row_cells(row: dict[str, Any]) -> tuple[Any, ...]:
    colour = {"success": "green", "failure": "red"}.get(session_outcome(row), "yellow")
    return (
        row["id"], Text(session_outcome(row), style=colour), str(row["n_turns"] or 0), row["scenario_id"] or "",
        row["persuader"] or "", f"{row['target']}/{row['personality']}", row["kind"] or "",
        (row["created_at"] or "")[5:16].replace("T", " "),
    )


class SessionsPane(ReportsFailures, Vertical):
    BINDINGS = [
        Binding("o", "open", "Replay"),
        Binding("a", "archive", "Archive"),
        Binding("n", "next_page", "Next page"),
        Binding("p", "previous_page", "Prev page"),
        Binding("slash", "search", "Search"),
        Binding("r", "refresh", "Refresh"),
    ]

    class PageRead(Message):
        """A page of sessions from the store, at `offset`."""

        def __init__(self, rows: list[dict[str, Any]], offset: int) -> None:
            super().__init__()
            self.rows, self.offset = rows, offset

    class CountRead(Message):
        """How many sessions match the filters (read after the page: a full scan on a big store)."""

        def __init__(self, total: int, offset: int, n: int) -> None:
            super().__init__()
            self.total, self.offset, self.n = total, offset, n

    class SuggestionsRead(Message):
        """Scenario ids and player names, for the filter boxes' completion."""

        def __init__(self, scenarios: list[str], agents: list[str]) -> None:
            super().__init__()
            self.scenarios, self.agents = scenarios, agents

    class Archived(Message):
        """A session was archived: its row leaves the list."""

        def __init__(self, session_id: str) -> None:
            super().__init__()
            self.session_id = session_id

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.page_offset = 0
        self.total = 0
        self.rows_shown = 0  # answers from the store (rows, then their count), so a caller can wait for the next
        self.pages_shown = 0

    def compose(self) -> ComposeResult:
        with Horizontal(id="sessions-filters", classes="filters"):
            yield Input(placeholder="search messages", id="sessions-search", compact=True)
            yield Select([(k, k) for k in KINDS], prompt="kind", id="sessions-kind", compact=True)
            yield Select([("success", "success"), ("failure", "failure")], prompt="outcome", id="sessions-outcome",
                         compact=True)
            yield Input(placeholder="scenario", id="sessions-scenario", compact=True)
            yield Input(placeholder="agent", id="sessions-agent", compact=True)
        table = DataTable(id="sessions-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table
        yield Label("", id="sessions-status")

    def on_mount(self) -> None:
        self.refresh_rows()
        self.load_suggestions()

    @work(thread=True, group="sessions-suggest", exit_on_error=False)
    def load_suggestions(self) -> None:
        """Scenario ids and player names complete as they are typed (-> accepts), since the filters match exactly."""
        from engine.game.scenario import ScenarioLibrary
        from engine.players.registry import persuader_names, target_names

        scenarios = sorted(ScenarioLibrary().all())
        agents = sorted({*persuader_names(), *target_names()})
        self.post_message(self.SuggestionsRead(scenarios, agents))

    def on_sessions_pane_suggestions_read(self, message: SuggestionsRead) -> None:
        self.query_one("#sessions-scenario", Input).suggester = SuggestFromList(message.scenarios, case_sensitive=False)
        self.query_one("#sessions-agent", Input).suggester = SuggestFromList(message.agents, case_sensitive=False)

    def filters(self) -> dict[str, Any]:
        def value(selector: str) -> str | None:
            v = self.query_one(selector).value
            return None if v is Select.NULL or not v else str(v).strip() or None

        outcome = value("#sessions-outcome")
        return {
            "kind": value("#sessions-kind"), "scenario": value("#sessions-scenario"),
            "agent": value("#sessions-agent"), "success": None if outcome is None else outcome == "success",
            "search": value("#sessions-search"),
        }

    @on(Input.Changed, "#sessions-filters Input")
    @on(Select.Changed, "#sessions-filters Select")
    def filters_changed(self) -> None:
        self.page_offset = 0
        self.refresh_rows()

    def refresh_rows(self) -> None:
        self.load_page(self.filters(), self.page_offset)

    @work(thread=True, exclusive=True, group="sessions-page", exit_on_error=False)
    def load_page(self, filters: dict[str, Any], offset: int) -> None:
        """The page first, then the count (a full scan at 100,000 sessions): rows show without waiting for it.
        A newer query cancels this one; a cancelled worker posts nothing, so typing never shows stale rows."""
        worker = get_current_worker()
        with self.app.worker_store() as store:
            rows = store.list_sessions(**filters, limit=PAGE, offset=offset)
            if worker.is_cancelled:
                return
            self.post_message(self.PageRead(rows, offset))
            total = store.count_sessions(**filters)
        if not worker.is_cancelled:
            self.post_message(self.CountRead(total, offset, len(rows)))

    def on_sessions_pane_page_read(self, message: PageRead) -> None:
        self._show_rows(message.rows, message.offset)

    def on_sessions_pane_count_read(self, message: CountRead) -> None:
        self._show_total(message.total, message.offset, message.n)

    def _show_rows(self, rows: list[dict[str, Any]], offset: int) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for row in rows:
            table.add_row(*row_cells(row), key=row["id"])
        self.page_offset = offset
        self.rows_shown += 1
        self.query_one("#sessions-status", Label).update(f"{offset + 1}-{offset + len(rows)} of … (counting)"
                                                         if rows else "no session matches")

    def _show_total(self, total: int, offset: int, n: int) -> None:
        self.total = total
        self.pages_shown += 1
        shown = f"{offset + 1}-{offset + n}" if n else "0"
        self.query_one("#sessions-status", Label).update(
            f"{shown} of {total} session(s)  ·  o replay  a archive  n/p page  / search"
        )

    def selected_id(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    # ----- actions --------------------------------------------------------------------------------
    def action_next_page(self) -> None:
        if self.page_offset + PAGE < self.total:
            self.load_page(self.filters(), self.page_offset + PAGE)

    def action_previous_page(self) -> None:
        if self.page_offset > 0:
            self.load_page(self.filters(), max(0, self.page_offset - PAGE))

    def action_clear_filters(self) -> None:
        for select in self.query("#sessions-filters Select").results(Select):
            select.clear()
        for box in self.query("#sessions-filters Input").results(Input):
            box.value = ""

    def action_search(self) -> None:
        self.query_one("#sessions-search", Input).focus()

    def action_refresh(self) -> None:
        self.refresh_rows()

    @on(DataTable.RowSelected)
    def action_open(self) -> None:
        session_id = self.selected_id()
        if session_id:
            self.app.push_screen(ReplayScreen(session_id))

    def action_archive(self) -> None:
        """Asks first: a stray `a` (meant for the search box) must not hide a session."""
        session_id = self.selected_id()
        if session_id:
            self.app.push_screen(Confirm(f"Archive session {session_id}? It leaves this list "
                                         f"(ptom-lab sessions archive --undo {session_id} brings it back).",
                                         yes="Archive (y)"),
                                 lambda yes: self.archive(session_id) if yes else None)

    @work(thread=True, group="sessions-archive", exit_on_error=False)
    def archive(self, session_id: str) -> None:
        """A write waits for the database lock (up to 30 s) while a game or an evaluation is writing: not on the
        UI thread."""
        with self.app.worker_store() as store:
            store.archive(session_id)
        self.post_message(self.Archived(session_id))

    def on_sessions_pane_archived(self, message: Archived) -> None:
        self.app.notify(f"Archived {message.session_id} "
                        f"(ptom-lab sessions archive --undo {message.session_id} restores it).")
        self.refresh_rows()


class ReplayScreen(Screen):
    """One stored session turn by turn: the turn list, the transcript, and the belief panel of the chosen turn."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("c", "copy", "Copy message"),
        Binding("end", "step('last')", "Whole game", priority=True),
        Binding("home", "step('first')", "Turn 1", show=False, priority=True),
        Binding("m", "export('md')", "Export .md"),
        Binding("j", "export('jsonl')", "Export .jsonl"),
    ]

    def __init__(self, session_id: str) -> None:
        super().__init__()
        self.session_id = session_id
        self.traj: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="replay-main"):
                table = DataTable(id="replay-turns", cursor_type="row")
                table.add_columns("#", "persuader", "target")
                yield table
                yield Transcript(id="replay-transcript")
            yield BeliefPanel(id="replay-belief", classes="sidebar")
        yield Footer()

    def on_mount(self) -> None:
        from engine.store import session_trajectory

        try:
            self.traj = session_trajectory(self.app.main_store, self.session_id)
        except Exception as exc:  # a damaged row: say so and go back, never crash the lab
            self.app.notify(f"Cannot replay {self.session_id}: {exc}", severity="error", timeout=10)
            self.app.pop_screen()
            return
        self.title = f"Session {self.traj['id']}"
        table = self.query_one(DataTable)
        for turn in self.traj["turns"]:
            table.add_row(str(turn["index"]), turn["message"][:60], (turn["target_reply"] or "")[:40])
        self.query_one(Transcript).replay(self.traj)
        if self.traj["turns"]:
            self.query_one(BeliefPanel).show(self.traj["turns"][0])
        table.focus()

    def current(self) -> dict[str, Any] | None:
        turns = self.traj.get("turns") or []
        row = self.query_one(DataTable).cursor_row
        return turns[row] if turns and 0 <= row < len(turns) else None

    @on(DataTable.RowHighlighted)
    def turn_highlighted(self) -> None:
        """Turn by turn: the transcript as it stood after the highlighted turn, and that turn's belief."""
        turn = self.current()
        if turn:
            self.query_one(BeliefPanel).show(turn)
            self.query_one(Transcript).replay(self.traj, upto=self.query_one(DataTable).cursor_row + 1)

    def action_step(self, where: str) -> None:
        """End: the whole game with its outcome; Home: back to turn 1."""
        table = self.query_one(DataTable)
        if table.row_count:
            table.move_cursor(row=table.row_count - 1 if where == "last" else 0)

    def palette_commands(self) -> Iterable[SystemCommand]:
        """What the command palette offers over a replay."""
        yield SystemCommand("Copy message", "copy the selected turn's persuader message (c)", self.action_copy)
        yield SystemCommand("Export as Markdown", "write session-ID.md in the current folder (m)",
                            lambda: self.action_export("md"))
        yield SystemCommand("Export as JSONL", "write session-ID.jsonl, one trajectory line (j)",
                            lambda: self.action_export("jsonl"))
        yield SystemCommand("Back to the sessions", "close the replay (Escape)", self.app.pop_screen)

    def action_copy(self) -> None:
        turn = self.current()
        if turn:
            self.app.copy_to_clipboard(turn["message"])
            self.app.notify(f"Copied the persuader's message of turn {turn['index']}.")

    def action_export(self, fmt: str) -> None:
        from engine.files import write_text
        from engine.game.transcript import export_text

        path = Path(f"session-{self.traj['id']}.{fmt}")
        try:
            write_text(path, export_text(self.traj, fmt))
        except (OSError, LabError) as exc:
            self.app.notify(f"Cannot write {path}: {exc}", severity="error")
            return
        self.app.notify(f"Wrote {path.resolve()}")
