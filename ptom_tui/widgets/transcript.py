"""A conversation as it is played or replayed, written with the engine's one transcript renderer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import RenderableType
from rich.markdown import Markdown
from textual import events
from textual.widgets import RichLog

from engine.game.transcript import header, outcome_lines, turn_lines


class Transcript(RichLog):
    """A scrolling log of turns; every line comes from `engine.game.transcript` so the TUI reads like `play`.

    RichLog wraps a line once, at the width it has when written; the transcript keeps what it wrote and writes
    it again when its width changes (a side panel opening, the terminal resized), so nothing stays cut off."""

    DEFAULT_CLASSES = "panel"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(wrap=True, markup=False, auto_scroll=True, min_width=20, **kwargs)
        self.entries: list[Callable[[], RenderableType]] = []
        self.drawn_width = 0

    def _add(self, make: Callable[[], RenderableType]) -> None:
        self.entries.append(make)
        self.write(make())

    def on_resize(self, event: events.Resize) -> None:
        super().on_resize(event)  # the first known size: RichLog writes what waited for it
        if self.drawn_width and event.size.width != self.drawn_width and self.entries:
            super().clear()
            for make in self.entries:
                self.write(make())
        self.drawn_width = event.size.width
        if self.auto_scroll:  # shorter (a prompt or the move builder opened below): the newest line stays in sight
            self.scroll_end(animate=False, immediate=False)

    def clear(self) -> Transcript:
        self.entries = []
        super().clear()
        return self

    def start(self, traj: dict[str, Any]) -> None:
        self.clear()
        self._add(lambda: Markdown("\n".join(header(traj))))

    def add_turn(self, turn: dict[str, Any]) -> None:
        self._add(lambda: Markdown("\n".join(turn_lines(turn))))

    def end(self, traj: dict[str, Any], status: str, error: str = "") -> None:
        if status != "finished":
            self._add(lambda: f"game {status}: {error}".strip())
            return
        self._add(lambda: Markdown("\n".join(outcome_lines(traj))))

    def replay(self, traj: dict[str, Any], upto: int | None = None) -> None:
        """The conversation as it stood after turn `upto` (1-based; None: all of it, with its outcome)."""
        turns = traj.get("turns", [])
        self.start(traj)
        for turn in turns[:upto]:
            self.add_turn(turn)
        if upto is None or upto >= len(turns):
            self.end(traj, traj.get("status", "finished"))

    def note(self, text: str) -> None:
        self._add(lambda: text)
