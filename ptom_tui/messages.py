"""Messages between the app and its panes (a pane's own worker messages live in its module, beside their handler)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message
from textual.worker import Worker, WorkerState

if TYPE_CHECKING:
    from engine.pipeline.jobs import JobProcess


class JobEnded(Message):
    """A job this app started has ended (`returncode` 0: done); posted to the widget that started it."""

    def __init__(self, process: JobProcess, returncode: int) -> None:
        super().__init__()
        self.process = process
        self.returncode = returncode


class WorkerFailed(Message):
    """A pane's thread worker failed; it bubbles up to the app, which says why."""

    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.worker = worker


class ReportsFailures:
    """Mixin for a pane: its workers' failures reach the app. Textual's `Worker.StateChanged` goes to the worker's
    own widget only (it does not bubble), so without this a failed poll or prepare would pass in silence."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.post_message(WorkerFailed(event.worker))
