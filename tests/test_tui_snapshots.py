"""Snapshots of every pane at 80x24 and 120x40 on a fixed store (fixed ids, times and results: no clocks).

Regenerate after an intended change: pytest tests/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

import pytest
from textual.css.query import NoMatches
from textual.widgets import DataTable, Input, Select
from tui_fixtures import HELDOUT, build_store

from ptom_tui.app import LabApp

PANES = {"arena": None, "data": "f3", "training": "f4", "evaluation": "f5", "sessions": "f6"}


@pytest.fixture
def app(tmp_path, monkeypatch) -> LabApp:
    monkeypatch.chdir(tmp_path)  # the header shows the db path: keep it the same on every machine
    (tmp_path / "scenarios").symlink_to(HELDOUT.parent)  # and Evaluation shows scenarios/heldout.jsonl, not /home/...
    build_store("sessions.db").close()
    return LabApp("sessions.db")


async def settle(pilot, pane: str) -> None:
    app = pilot.app
    for _ in range(200):  # every pane loads in a worker: wait for its data, not for a clock
        ready = {
            "arena": lambda: app.query_one("#arena-target", Select).value == "me",
            "sessions": lambda: app.query_one("#sessions-table", DataTable).row_count == 4
            and app.query_one("SessionsPane").pages_shown > 0,
            "training": lambda: len(app.query_one("TrainingPane").steps) == 20,
            "evaluation": lambda: app.query_one("#eval-table", DataTable).row_count == 2,
            "data": lambda: app.query_one("#data-found", Select).prompt != "found .jsonl",
        }[pane]
        try:
            if ready():
                break
        except NoMatches:  # the panes behind the first mount just after the first frame
            pass
        await pilot.pause(0.05)
    else:
        raise AssertionError(f"the {pane} pane never loaded its data")
    for box in app.query(Input):  # a blinking cursor is a clock: keep it steadily on
        box.cursor_blink = False
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
@pytest.mark.parametrize("pane", list(PANES))
def test_pane_snapshot(snap_compare, app, pane, size):
    async def run_before(pilot) -> None:
        await settle(pilot, "arena")
        if PANES[pane]:
            await pilot.press(PANES[pane])
        await settle(pilot, pane)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
