"""Arena: one game between a chosen persuader and human, played live in a thread worker.

The game is `engine.game.episode.play`; this pane only picks the players, listens to the loop (each event is posted
to the pane as a message, and each turn committed by `StoreListener` as it ends) and, when the researcher plays
a side (`me`), hands the player an `ask` that blocks the worker until the Input is submitted.
Escape cancels: the next check (a streamed token, the human's wait, a local model's next token, the end of a turn)
raises KeyboardInterrupt inside the loop, which ends the game `interrupted` with its finished turns kept.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, Select, Static, TabbedContent
from textual.worker import Worker, get_current_worker

from engine.game.interfaces import CONDITIONS, HUMAN_BRIEF_HEADER
from engine.game.moves import MoveSyntaxError
from engine.game.scenario import Scenario
from engine.players.persuaders.human import add_move, example_moves, has_moves
from ptom_tui.messages import ReportsFailures
from ptom_tui.widgets.belief import BeliefPanel
from ptom_tui.widgets.move_builder import MoveBuilder
from ptom_tui.widgets.target_answer import TargetAnswer
from ptom_tui.widgets.transcript import Transcript

OFFLINE_FIRST = ("rational", "me", "planner")  # need no key or model: listed before the API players


def reply_hint(prompt_lines: list[str], persuader_example: str | None) -> str:
    """The reply box's placeholder: how to say it so the engine reads it (free text alone is an appeal or a
    plain answer; a human target's answers go with the controls below the box, `TargetAnswer`);
    a human persuader (`persuader_example`: a move line in the scenario's own ids) is shown the move syntax."""
    if persuader_example is not None:
        return f"[{persuader_example}] then your message, or build moves above; Enter sends"
    if any(x.startswith("Your answer") for x in prompt_lines):  # one answer asked on its own (HumanTarget)
        return "press an answer below, or type its number; Enter sends"
    return "your reply in your own words (answer what you are asked below); Enter sends"


def _options(names: list[str]) -> list[tuple[str, str]]:
    return [(n, n) for n in names]


def _loading(widget_id: str) -> Select:
    """A dropdown that says `loading` until its list is read; it has no blank entry, so nothing to pick by mistake
    before or after (`ArenaPane.on_arena_pane_choices_read` puts the real list in)."""
    return Select([("loading", "")], value="", allow_blank=False, id=widget_id, compact=True, disabled=True)


def offline_first(names: list[str]) -> list[str]:
    """The players that run offline (the rule-based human `rational`, the planner, you) before those that need
    an API key or a model."""
    return sorted(names, key=lambda n: (OFFLINE_FIRST.index(n) if n in OFFLINE_FIRST else len(OFFLINE_FIRST)))


class _UIListener:
    """Episode listener that posts each event to the pane as a message, and notices a cancel."""

    def __init__(self, pane: ArenaPane) -> None:
        self.pane = pane

    def _check(self) -> None:
        if get_current_worker().is_cancelled:
            raise KeyboardInterrupt

    def on_start(self, episode: Any) -> None:
        self.pane.post_message(ArenaPane.GameStarted(episode.to_trajectory()))

    def on_turn(self, episode: Any, turn: Any) -> None:
        self.pane.post_message(ArenaPane.TurnEnded(turn.model_dump(mode="json")))
        self._check()  # the turn boundary: a cancel stops here even when a player cannot be stopped mid-reply

    def on_end(self, episode: Any) -> None:
        self.pane.post_message(ArenaPane.GameEnded(episode.to_trajectory(), episode.status, episode.error))


class ArenaPane(ReportsFailures, Vertical):
    class ChoicesRead(Message):
        """The scenario ids, the players with their help text, and the personalities, read off the UI thread."""

        def __init__(self, scenarios: list[str], helps: dict[str, dict[str, str]], personalities: list[str]) -> None:
            super().__init__()
            self.scenarios, self.helps, self.personalities = scenarios, helps, personalities

    class GameStarted(Message):
        """The game began: its header (scenario, players) for the transcript."""

        def __init__(self, traj: dict[str, Any]) -> None:
            super().__init__()
            self.traj = traj

    class TurnEnded(Message):
        """A turn was played and committed: the transcript and the belief panel show it."""

        def __init__(self, turn: dict[str, Any]) -> None:
            super().__init__()
            self.turn = turn

    class GameEnded(Message):
        """The game is over (finished, interrupted or errored)."""

        def __init__(self, traj: dict[str, Any], status: str, error: str) -> None:
            super().__init__()
            self.traj, self.status, self.error = traj, status, error

    class MovesOffered(Message):
        """The researcher plays the persuader: the move builder is filled from this game's scenario."""

        def __init__(self, scenario: Scenario) -> None:
            super().__init__()
            self.scenario = scenario

    class StartFailed(Message):
        """The players or the scenario could not be made: the setup comes back for a fix."""

        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason

    class ReplyWanted(Message):
        """The researcher's player waits for a reply to `prompt`; `brief` is a human target's brief, `request`
        the answers it wants (`engine.players.targets.answers.Request`, for the answer controls)."""

        def __init__(self, prompt: str, brief: str, request: Any = None) -> None:
            super().__init__()
            self.prompt, self.brief, self.request = prompt, brief, request

    class Streamed(Message):
        """A piece of a model's reply as it is generated."""

        def __init__(self, piece: str) -> None:
            super().__init__()
            self.piece = piece

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answers: queue.Queue[str] = queue.Queue()
        self.game: Worker | None = None
        self.cancelled = threading.Event()  # set on Escape: a local model's `generate` stops at its next token
        self.streamed = ""
        self.player_help: dict[str, dict[str, str]] = {}
        self.brief = ""  # a human persuader's brief, from its first prompt
        self.brief_help = ""  # how to answer, from a human target's first prompt
        self.scenario: Scenario | None = None  # the game's scenario when the researcher plays the persuader
        self.unconfirmed = ""  # a persuader message with no move, sent only if Enter is pressed on it again
        self.working_since: float | None = None  # since Play or the researcher's last reply: a player is working
        self.speed = ""  # the last model reply's tokens/s, where its backend reported usage

    def compose(self) -> ComposeResult:
        with Horizontal():
            # compact widgets, one row each: the whole setup fits an 80x24 terminal without scrolling
            with VerticalScroll(id="arena-setup", classes="sidebar"):
                yield Label("Scenario", classes="field")
                yield _loading("arena-scenario")
                yield Label("Condition", classes="field")
                yield Select(_options(list(CONDITIONS)), id="arena-condition", value="hidden", allow_blank=False,
                             compact=True)
                yield Label("Persuader", classes="field")
                yield _loading("arena-persuader")
                yield Input(placeholder="argument (see below)", id="arena-persuader-arg", compact=True)
                yield Label("Human", classes="field")
                yield _loading("arena-target")
                yield Input(placeholder="argument (see below)", id="arena-target-arg", compact=True)
                yield Label("Personality", classes="field")
                yield _loading("arena-personality")
                yield Label("Seed", classes="field")
                yield Input("0", id="arena-seed", type="integer", compact=True)
                yield Button("Play", id="arena-play", variant="primary", compact=True)
                yield Static("", id="arena-hint")
            with Vertical(id="arena-main"):
                yield Transcript(id="arena-transcript")
                yield Static("", id="arena-status")
                yield Static("", id="arena-stream")
                yield Static("", id="arena-prompt")
                yield MoveBuilder(id="arena-moves")
                yield Input(placeholder="your reply (Enter sends)", id="arena-reply", disabled=True,
                            select_on_focus=False)  # a built move lands at the end of the text, not over it
                yield TargetAnswer(id="arena-answer")
            # the brief and the belief each scroll on their own, so both stay in sight on a small terminal
            with Vertical(id="arena-side"):
                with VerticalScroll(id="arena-brief-box", classes="sidebar"):
                    yield Static("", id="arena-brief")
                with VerticalScroll(id="arena-belief-box", classes="sidebar"):
                    yield BeliefPanel(id="arena-belief")

    def on_mount(self) -> None:
        self.query_one("#arena-stream").display = False
        self.query_one("#arena-prompt").display = False
        self.query_one("#arena-status").display = False
        self.query_one(MoveBuilder).display = False
        self.query_one("#arena-brief-box").display = False
        self.query_one("#arena-side").display = False  # shown with the game: the setup needs the width first
        self.set_interval(0.25, self._show_status)
        self.call_after_refresh(  # after layout, so the text wraps to the real width
            self.query_one(Transcript).note,
            "Pick the players on the left and press Play. Ctrl+N shows the setup again after a game.",
        )
        self.load_choices()

    @work(thread=True, group="arena-choices", exit_on_error=False)
    def load_choices(self) -> None:
        """Player names import every player module once: off the UI thread, so the first paint is not held."""
        from engine.game.scenario import ScenarioLibrary
        from engine.players.registry import persuader_names, target_names
        from engine.players.targets.rational import PERSONALITIES

        scenarios = sorted(ScenarioLibrary().all())
        helps = {"persuader": persuader_names(), "target": target_names()}
        self.post_message(self.ChoicesRead(scenarios, helps, list(PERSONALITIES)))

    def on_arena_pane_choices_read(self, message: ChoicesRead) -> None:
        def fill(selector: str, names: list[str], preferred: str) -> None:
            select = self.query_one(selector, Select)
            if not names:
                select.set_options([("none found", "")])
                return
            select.set_options(_options(names))
            select.value = preferred if preferred in names else names[0]
            select.disabled = False

        helps = message.helps
        self.player_help = helps
        fill("#arena-scenario", message.scenarios, "business_vacation")
        fill("#arena-persuader", offline_first(list(helps["persuader"])), "planner")
        fill("#arena-target", offline_first(list(helps["target"])), "me")
        fill("#arena-personality", message.personalities, "cooperative")
        self.show_hint()
        tabs = self.app.query_one(TabbedContent)
        if tabs.active == "arena" and (self.app.focused is None or self.app.focused.id is None):
            # a new user: Enter plays a game. Without scrolling: Play is in sight, and the scroll that centres a
            # focused widget raced the hint's new height, sometimes hiding the top of the form
            self.query_one("#arena-play").focus(scroll_visible=False)

    @on(Select.Changed, "#arena-persuader")
    @on(Select.Changed, "#arena-target")
    def show_hint(self) -> None:
        """What each chosen player is and what its argument means (e.g. `local:PATH+ADAPTER`), from the registry."""
        lines = []
        for role, selector, title in (("persuader", "#arena-persuader", "Persuader"), ("target", "#arena-target", "Human")):
            name = self.query_one(selector, Select).value
            text = self.player_help.get(role, {}).get(str(name)) if name else None
            if text:
                lines.append(f"{title} {name}: {text}")
        self.query_one("#arena-hint", Static).update(Text("\n".join(lines), style="dim"))

    # ----- settings ------------------------------------------------------------------------------------
    def _spec(self, select: str, arg: str) -> str:
        name = self.query_one(select, Select).value
        if not name:  # still loading, or none found
            return ""
        extra = self.query_one(arg, Input).value.strip()
        return f"{name}:{extra}" if extra else str(name)

    def settings(self) -> dict[str, Any]:
        seed_text = self.query_one("#arena-seed", Input).value.strip()
        return {
            "scenario": self.query_one("#arena-scenario", Select).value,
            "condition": self.query_one("#arena-condition", Select).value,
            "persuader": self._spec("#arena-persuader", "#arena-persuader-arg"),
            "target": self._spec("#arena-target", "#arena-target-arg"),
            "personality": self.query_one("#arena-personality", Select).value,
            "seed": int(seed_text) if seed_text.lstrip("-").isdigit() else 0,
        }

    # ----- actions -------------------------------------------------------------------------------------
    @on(Button.Pressed, "#arena-play")
    def action_play(self) -> None:
        s = self.settings()
        if not (s["scenario"] and s["personality"] and s["persuader"] and s["target"]):
            self.app.notify("Pick a scenario, a persuader, a human and a personality first.", severity="warning")
            return
        if self.game is not None and self.game.is_running:
            self.app.notify("A game is running: Escape cancels it.", severity="warning")
            return
        self.query_one("#arena-setup").display = False
        self.query_one("#arena-side").display = True
        self.query_one("#arena-side").remove_class("persuading")
        self.query_one("#arena-brief-box").display = False
        self.brief = self.brief_help = self.unconfirmed = self.speed = ""
        self.scenario = None
        self.query_one(MoveBuilder).display = False
        self.query_one(BeliefPanel).clear()
        self.answers = queue.Queue()
        self.working_since = time.monotonic()
        self._show_status()
        self.cancelled = threading.Event()
        self.game = self.run_game(s, self.cancelled)

    def action_new_game(self) -> None:
        if self.game is not None and self.game.is_running:
            self.app.notify("A game is running: Escape cancels it, then Ctrl+N sets up the next.", severity="warning")
            return
        self.query_one("#arena-setup").display = True
        self.query_one("#arena-side").display = False
        self.query_one("#arena-play").focus()

    def action_cancel(self) -> None:
        if self.game is not None and self.game.is_running:
            self.cancelled.set()
            self.game.cancel()
            self.app.notify("Cancelling: a model's reply stops at its next token. The game ends as interrupted, "
                            "finished turns are kept.")

    @on(Input.Submitted, "#arena-reply")
    def reply_submitted(self, event: Input.Submitted) -> None:
        text = "\n".join(x for x in (event.value.strip(), self.query_one(TargetAnswer).lines()) if x)
        if not text:
            return
        if self.scenario is not None and not has_moves(text) and text != self.unconfirmed:
            self.unconfirmed = text  # a turn is scarce: a message without a move is sent only when meant
            self.app.notify("This message has no move: it is a plain appeal. Enter again sends it as it is; "
                            "add a move with the builder or [move] first.", severity="warning")
            return
        self.unconfirmed = ""
        event.input.value = ""
        event.input.disabled = True
        self.query_one("#arena-prompt").display = False
        self.query_one(MoveBuilder).display = False
        self.query_one(TargetAnswer).clear()
        self.working_since = time.monotonic()
        self.answers.put(text)

    async def on_target_answer_answered(self, _message: TargetAnswer.Answered) -> None:
        """A click answered an ask that wants no words: send it as Enter would."""
        await self.query_one("#arena-reply", Input).action_submit()

    def on_target_answer_ready(self, _message: TargetAnswer.Ready) -> None:
        self.query_one("#arena-reply", Input).focus()

    # ----- the game (worker thread) --------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="arena-game", exit_on_error=False)
    def run_game(self, s: dict[str, Any], cancelled: threading.Event) -> str:
        from engine.errors import LabError
        from engine.game.episode import play
        from engine.game.scenario import ScenarioLibrary
        from engine.llm.base import cancel_on
        from engine.players.registry import make_persuader, make_target
        from engine.store import StoreListener

        worker = get_current_worker()
        try:
            scenario = ScenarioLibrary().get(s["scenario"])
            persuader = make_persuader(s["persuader"])
            target = make_target(s["target"])
        except LabError as exc:
            self.post_message(self.StartFailed(str(exc)))
            return "error"
        if getattr(persuader, "format_warning", None):  # notify posts a message: safe from this worker thread
            self.app.notify(persuader.format_warning, title="Reply format", severity="warning", timeout=15)
        if hasattr(target, "ask"):  # a human at the keyboard: the worker waits for the Input
            target.ask = self._asker(worker, target)
        if hasattr(persuader, "ask"):  # the researcher plays the persuader
            persuader.ask = self._asker(worker, persuader)
            self.post_message(self.MovesOffered(scenario))
        if hasattr(persuader, "on_text"):
            persuader.on_text = self._streamer(worker)
        with self.app.worker_store() as store, cancel_on(cancelled):
            try:
                episode = play(
                    scenario, persuader, target, personality=s["personality"], condition=s["condition"],
                    seed=s["seed"], kind="arena", listeners=[StoreListener(store), _UIListener(self)],
                )
            except KeyboardInterrupt:
                return "interrupted"
        return episode.status

    def _asker(self, worker: Worker, player: Any) -> Callable[[str], str]:
        def ask(prompt: str) -> str:
            brief = player.brief() if hasattr(player, "brief") else ""
            self.post_message(self.ReplyWanted(prompt, brief, getattr(player, "request", None)))
            while True:
                if worker.is_cancelled:
                    raise KeyboardInterrupt
                try:
                    return self.answers.get(timeout=0.05)
                except queue.Empty:
                    continue

        return ask

    def _streamer(self, worker: Worker) -> Callable[[str], None]:
        def on_text(piece: str) -> None:
            if worker.is_cancelled:
                raise KeyboardInterrupt
            self.post_message(self.Streamed(piece))

        return on_text

    # ----- UI updates (called on the UI thread) ---------------------------------------------------------
    def on_arena_pane_game_started(self, message: GameStarted) -> None:
        self.query_one(Transcript).start(message.traj)

    def on_arena_pane_turn_ended(self, message: TurnEnded) -> None:
        turn = message.turn
        self.streamed = ""
        self.query_one("#arena-stream").display = False
        self.query_one(Transcript).add_turn(turn)
        self.query_one(BeliefPanel).show(turn)
        rates = [u["output_tokens"] / u["latency_ms"] * 1000 for u in (turn.get("usage"), turn.get("target_usage"))
                 if u and u.get("output_tokens") and u.get("latency_ms")]
        if rates:
            self.speed = f"last reply {rates[0]:.0f} tokens/s"

    def on_arena_pane_game_ended(self, message: GameEnded) -> None:
        traj, status, error = message.traj, message.status, message.error
        self.working_since = None
        self.query_one("#arena-status").display = False
        self.query_one(MoveBuilder).display = False
        self.query_one(TargetAnswer).clear()
        self.query_one(Transcript).end(traj, status, error)
        reply = self.query_one("#arena-reply", Input)
        reply.disabled, reply.placeholder = True, "game over: Ctrl+N sets up the next"
        self.query_one("#arena-prompt").display = False
        self.query_one("#arena-stream").display = False
        o = traj.get("outcome")
        if status == "finished" and o:
            verdict = "success" if o["success"] else "failure"
            self.app.notify(f"Game over: {verdict}, chose {o['choice']} after {o['turns']} turn(s). "
                            f"Saved as {traj['id']}. Ctrl+N for another.")
        elif status == "errored":
            self.app.notify(f"The game stopped: {error}", severity="error", timeout=10)
        else:
            self.app.notify(f"Game {status}; finished turns are saved as {traj['id']}.")
        self.app.sessions_changed()

    def on_arena_pane_start_failed(self, message: StartFailed) -> None:
        self.working_since = None
        self.query_one("#arena-status").display = False
        self.query_one("#arena-setup").display = True
        self.query_one("#arena-side").display = False
        self.app.notify(message.reason, title="Cannot start the game", severity="error", timeout=15)

    def on_arena_pane_reply_wanted(self, message: ReplyWanted) -> None:
        self.working_since = None
        self.query_one("#arena-status").display = False
        self._await_reply(message.prompt, message.brief)
        if message.request is not None:
            self.query_one(TargetAnswer).show(message.request)

    def on_arena_pane_moves_offered(self, message: MovesOffered) -> None:
        self.scenario = message.scenario
        self.query_one(MoveBuilder).set_scenario(message.scenario)

    def on_move_builder_built(self, message: MoveBuilder.Built) -> None:
        """Add the built move to the message box's `[moves]`, where a typist would have written it."""
        assert self.scenario is not None
        box = self.query_one("#arena-reply", Input)
        try:
            box.value = add_move(box.value, message.move, self.scenario)
        except MoveSyntaxError as exc:
            self.app.notify(f"Fix the moves typed first: {exc}", severity="warning")
            return
        box.cursor_position = len(box.value)
        box.focus()

    def _show_status(self) -> None:
        """While a player works (from Play, or the researcher's reply, until the next reply is wanted): how long,
        and the last model reply's speed."""
        if self.working_since is None:
            return
        status = self.query_one("#arena-status", Static)
        cancelling = self.game is not None and self.game.is_cancelled
        words = "cancelling..." if cancelling else "Escape cancels"
        speed = f" · {self.speed}" if self.speed else ""
        status.update(Text(f"Playing: {time.monotonic() - self.working_since:.1f} s{speed} · {words}", style="dim"))
        status.display = True

    def _await_reply(self, prompt: str, brief: str) -> None:
        """Show this turn's prompt above the reply box and the player's brief on the side panel.

        A target's brief comes from `HumanTarget.brief()` (it grows with each disclosure); a human persuader's is
        the block under the brief mark in its first prompt, kept for the later turns."""
        lines = prompt.split("\n")
        is_persuader = not brief  # a human target always has a brief; a human persuader's is in its prompt
        if HUMAN_BRIEF_HEADER in lines:  # the brief goes to the side panel; keep the prompt to this turn
            start = lines.index(HUMAN_BRIEF_HEADER) + 1
            end = lines.index("", start) if "" in lines[start:] else len(lines)
            block = lines[start:end]
            if brief:  # keep what the block adds to the target's brief: how to answer
                known = set(brief.split("\n"))
                self.brief_help = "\n".join(x for x in block if x not in known)
            else:
                self.brief = "\n".join(block)
            lines = lines[end + 1 :]
        brief = brief or self.brief
        shown = self.query_one("#arena-prompt", Static)
        shown.update(Text("\n".join(x for x in lines if x and not x.startswith(("Your reply", "Your answer")))))
        shown.display = True
        if brief:
            panel = self.query_one("#arena-brief", Static)
            panel.update(Text.assemble(("Your brief\n", "bold"), brief,
                                       ("\n\n" + self.brief_help if self.brief_help else "", "dim")))
            self.query_one("#arena-brief-box").display = True
        box = self.query_one("#arena-reply", Input)
        example = example_moves(self.scenario) if is_persuader and self.scenario is not None else None
        box.placeholder = reply_hint(lines, example)
        self.query_one(MoveBuilder).display = is_persuader and self.scenario is not None
        self.query_one("#arena-side").set_class(is_persuader, "persuading")
        box.disabled = False
        box.focus()

    def on_arena_pane_streamed(self, message: Streamed) -> None:
        self.streamed += message.piece
        box = self.query_one("#arena-stream", Static)
        box.display = True
        box.update(Text(self.streamed[-600:]))
