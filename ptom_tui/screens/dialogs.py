"""The lab's two dialogs: a yes/no question before something that cannot be undone, and a failure in full."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, TextArea


class Confirm(ModalScreen[bool]):
    """A yes/no question before something that cannot be undone."""

    BINDINGS = [Binding("escape", "dismiss(False)", "Cancel"), Binding("y", "dismiss(True)", "Yes")]

    def __init__(self, question: str, yes: str = "Yes (y)") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.question))
            with Horizontal(classes="buttons"):
                yield Button(self.yes, id="confirm-yes", variant="warning", compact=True)
                yield Button("Cancel (Esc)", id="confirm-no", compact=True)

    @on(Button.Pressed)
    def answered(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-yes")


class ErrorScreen(ModalScreen[None]):
    """What failed, in full (a traceback or a job's log), where a toast would show one cut line: read-only text
    that scrolls and can be selected and copied."""

    BINDINGS = [Binding("escape", "dismiss", "Close")]

    def __init__(self, title: str, detail: str) -> None:
        super().__init__()
        self.heading = title
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog error"):
            yield Label(Text(self.heading, style="bold red"), id="error-title")
            yield TextArea(self.detail, read_only=True, soft_wrap=True, show_line_numbers=False, id="error-detail")
            with Horizontal(classes="buttons"):
                yield Button("Close (Esc)", id="error-close", compact=True)

    def on_mount(self) -> None:
        area = self.query_one(TextArea)
        area.focus()
        area.move_cursor(area.document.end)  # the reason is at the end of a traceback or a log

    @on(Button.Pressed, "#error-close")
    def close(self) -> None:
        self.dismiss()
