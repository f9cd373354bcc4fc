"""The help screen: what each pane is for and its keys (the footer shows the keys of the focused pane)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Markdown

HELP = """\
# PToM Lab

**Panes** (F2-F6, or click a tab): **Arena** play one game live · **Data** trajectory files, stats, preview,
prepare · **Training** follow or start a finetuning run · **Evaluation** launch, watch, leaderboard ·
**Sessions** every stored game, filter, search, replay. Keys of the pane in front are in the footer;
the others work from anywhere.

| Where | Key | Does |
|---|---|---|
| everywhere | F1 or ? | this help (`?` types itself in a text box) |
| | Ctrl+P | command palette: every action by name |
| | Ctrl+Q | quit (runs started here go on in the background: it says which) |
| Arena | Ctrl+N | show the setup, then **Play** |
| | Enter | send your reply (when you play the human, `me`) |
| | Escape | cancel the game: it ends *interrupted*, finished turns kept |
| Data | Ctrl+L / Ctrl+G / Ctrl+R | load / generate / prepare |
| Training | Ctrl+T | new run, in the background, into a folder of its own |
| | Enter | follow the selected run |
| Evaluation | Ctrl+E | evaluate with the settings above (the same one twice is refused) |
| Sessions | / | full-text search (scenario and agent filters complete with ->) |
| | o or Enter | replay the selected session |
| | a | archive it (asks first; `ptom-lab sessions archive --undo ID` restores) |
| | n / p | next / previous page |
| Replay | Up / Down | step through the game: transcript up to that turn, its belief |
| | End / Home | the whole game with its outcome / back to turn 1 |
| | c | copy the selected turn's persuader message |
| | m / j | export as Markdown / JSONL (current folder) |
| | Escape | back |

As the human, free text is your answer; the persuader reads your preferences and favourite only from
`PREFERS: cost -1; comfort +1` and `CHOICE: B` lines (the reply box suggests them). As the persuader, start a
message with moves in brackets: `[disclose B.cost; ask_preference comfort] Berlin is cheaper.`
Everything you play is in the store (`--db`, default `sessions.db`) as each turn ends.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help"):  # focused: arrows and Page keys scroll it
            yield Markdown(HELP)
        yield Footer()
