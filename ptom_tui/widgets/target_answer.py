"""The answer controls of a human target: one row of buttons per question the persuader asked.

A preference question gets like / don't care / dislike, a fact yes / no, a choice one button per proposal
(`engine.players.targets.answers` says which questions an ask wants and what their options are). The picks are
written as the answer lines the engine reads (`PREFERS: cost -1`), sent with the reply's words; whether they are
enough and valid is the engine's rule, not this widget's. An ask that wants no words (the final choice, an answer
asked again) is sent by the click that completes it.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Label

from engine.players.targets.answers import Question, Request, Value


class TargetAnswer(Vertical):
    DEFAULT_CSS = """
    TargetAnswer { height: auto; max-height: 8; padding: 0 1; }
    TargetAnswer .answer-row { height: 1; overflow: hidden hidden; }
    TargetAnswer .answer-title { color: $text-muted; margin-right: 1; }
    TargetAnswer Button { margin-right: 1; min-width: 0; }
    """

    class Answered(Message):
        """A click completed an ask that wants no words: `lines` is the answer to send."""

        def __init__(self, lines: str) -> None:
            super().__init__()
            self.lines = lines

    class Ready(Message):
        """Every question has its pick, and words go with them: the reply box takes the focus back (Enter sends)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.request = Request()
        self.chosen: dict[str, Value] = {}

    def on_mount(self) -> None:
        self.display = False

    def show(self, request: Request) -> None:
        """Controls for this ask's questions (none: the widget hides), with nothing picked yet."""
        self.request, self.chosen = request, {}
        self.remove_children()
        rows = [self._row(qi, q) for qi, q in enumerate(request.questions)]
        self.mount_all(rows)
        self.display = bool(rows)

    def _row(self, qi: int, question: Question) -> Horizontal:
        """`cost: [like] [don't care] [dislike]`; a choice's buttons carry the proposals' names when the row
        fits them (`A = Lisbon`), else their ids (the brief names them)."""
        labels = [label for _, label in question.options]
        width = self.parent.size.width if isinstance(self.parent, Widget) else 0  # this widget: 0 while hidden
        if len(question.title) + sum(len(x) + 3 for x in labels) > width - 4:
            labels = [str(value) for value, _ in question.options]
        title = Label(f"{question.title}:", classes="answer-title")
        title.styles.width = "auto"  # the app's `Label { width: 100% }` outranks DEFAULT_CSS
        buttons = (Button(label, name=f"{qi}:{oi}", compact=True, classes="answer-option")
                   for oi, label in enumerate(labels))
        return Horizontal(title, *buttons, classes="answer-row")

    def clear(self) -> None:
        """No ask waits: the controls go (after a reply is sent, and when the game ends)."""
        self.show(Request())

    def lines(self) -> str:
        """The picks as answer lines, in the order the questions were asked."""
        return "\n".join(q.line(self.chosen[q.key]) for q in self.request.questions if q.key in self.chosen)

    @on(Button.Pressed, ".answer-option")
    def picked(self, event: Button.Pressed) -> None:
        event.stop()
        qi, oi = (int(x) for x in str(event.button.name).split(":"))
        question = self.request.questions[qi]
        self.chosen[question.key] = question.options[oi][0]
        row = event.button.parent
        for button in row.query(Button) if row else []:
            button.variant = "primary" if button is event.button else "default"
        if len(self.chosen) < len(self.request.questions):  # keys: on to the next row still unanswered
            rows = list(self.query(".answer-row"))
            later = [r for i, r in enumerate(rows) if i > qi and self.request.questions[i].key not in self.chosen]
            if later and event.button.has_focus:
                later[0].query(Button).first().focus()
        elif self.request.words:
            self.post_message(self.Ready())
        else:
            self.post_message(self.Answered(self.lines()))
