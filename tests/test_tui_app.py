"""Pilot tests of the TUI: each pane used as a researcher would, by key presses, against a real store."""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from textual.css.query import NoMatches
from textual.widgets import DataTable, Input, Label, ProgressBar, RichLog, Select, TabbedContent
from tui_fixtures import build_store

from engine.pipeline import jobs
from engine.pipeline.training.config import TrainConfig
from engine.store import Store, session_trajectory
from ptom_tui.app import ACTIONS, PANES, LabApp
from ptom_tui.screens.evaluation import EvaluationPane


async def wait_for(pilot, condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except NoMatches:  # the panes behind the first mount just after the first frame
            pass
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the UI")
        await pilot.pause(0.05)


@pytest.fixture
def db(tmp_path) -> str:
    path = tmp_path / "sessions.db"
    build_store(path).close()
    return str(path)


def test_start_imports_no_torch_or_transformers(tmp_path):
    """The app paints without the heavy libraries: they load only inside workers that need them."""
    code = (
        "import asyncio, sys\n"
        "from ptom_tui.app import LabApp\n"
        "async def main():\n"
        f"    app = LabApp({str(tmp_path / 's.db')!r})\n"
        "    async with app.run_test() as pilot:\n"
        "        await pilot.pause(0.5)\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


async def test_play_a_whole_game_as_the_human(db):
    """Arena: the planner persuades, the researcher answers every turn by typing (each answer the words left out is
    asked on its own, answered by its number); the game is in the store turn by turn and shows up in Sessions."""
    app = LabApp(db)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.query_one("#arena-target", Select).value == "me")
        assert app.query_one("#arena-persuader", Select).value == "planner"
        await pilot.press("ctrl+n", "enter")
        replies = 0
        while True:
            await wait_for(pilot, lambda: not app.query_one("#arena-reply", Input).disabled
                           or not app.query_one("ArenaPane").game.is_running)
            if not app.query_one("ArenaPane").game.is_running:
                break
            assert "Your brief" in str(app.query_one("#arena-brief").content)
            prompt = str(app.query_one("#arena-prompt").content)
            alone = "1) " in prompt  # an answer asked on its own (a question the words left out, the final choice)
            await pilot.press(*("2" if alone else "ok"), "enter")  # 2) don't care / 2) B
            replies += not alone
            assert replies < 30
        assert replies >= 1
        store = Store(db)
        (row,) = store.list_sessions(kind="arena")
        assert row["status"] == "finished" and row["persuader"] == "planner" and row["target"] == "me"
        assert row["choice"] == "B" and row["n_turns"] == replies == len(store.turns(row["id"]))
        assert store.turns(row["id"])[0]["belief_json"]  # the planner's belief, shown in the side panel
        await pilot.press("f6")
        table = app.query_one("#sessions-table", DataTable)
        await wait_for(pilot, lambda: row["id"] in [str(k.value) for k in table.rows])


async def test_escape_cancels_a_game_and_keeps_it_interrupted(db):
    app = LabApp(db)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.query_one("#arena-target", Select).value == "me")
        await pilot.press("ctrl+n", "enter")
        await wait_for(pilot, lambda: not app.query_one("#arena-reply", Input).disabled)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.query_one("ArenaPane").game.is_running)
        (row,) = Store(db).list_sessions(kind="arena")
        assert row["status"] == "interrupted"


async def test_missing_api_key_is_a_notification_not_a_crash(db, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    app = LabApp(db)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.query_one("#arena-persuader", Select).value == "planner")
        app.query_one("#arena-persuader", Select).value = "openai"
        app.query_one("#arena-persuader-arg", Input).value = "gpt-4o"
        await pilot.press("ctrl+n", "enter")
        await wait_for(pilot, lambda: any("OPENAI_API_KEY" in str(n.message) for n in app._notifications))
        assert app.query_one("#arena-setup").display  # the setup is back for a fix


async def test_sessions_filter_search_replay_and_archive(db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f6")
        table = app.query_one("#sessions-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 4)
        app.query_one("#sessions-kind", Select).value = "evaluate"
        await wait_for(pilot, lambda: table.row_count == 2)
        app.query_one("#sessions-kind", Select).clear()
        await wait_for(pilot, lambda: table.row_count == 4)
        app.query_one("#sessions-scenario", Input).focus()
        await pilot.press(*"city_b", "right")  # the suggestion completes the scenario id
        assert app.query_one("#sessions-scenario", Input).value == "city_budget"
        await wait_for(pilot, lambda: [str(k.value) for k in table.rows] == ["sess0002fixd"])
        app.query_one("#sessions-agent", Input).value = "rational"
        app.query_one("#sessions-scenario", Input).value = ""
        await wait_for(pilot, lambda: table.row_count == 4)
        app.query_one("#sessions-outcome", Select).value = "failure"
        await wait_for(pilot, lambda: table.row_count == Store(db).count_sessions(success=False))
        app.action_pane("sessions", "clear_filters")
        await wait_for(pilot, lambda: table.row_count == 4 and app.query_one("#sessions-agent", Input).value == "")
        app.query_one("#sessions-search", Input).focus()
        await pilot.press(*"hiring")  # only the hiring scenario's messages mention it ... or none
        expected = Store(db).count_sessions(search="hiring")
        await wait_for(pilot, lambda: table.row_count == expected and "of " + str(expected) in
                       str(app.query_one("#sessions-status").content))
        app.query_one("#sessions-search", Input).value = ""
        await wait_for(pilot, lambda: table.row_count == 4)
        table.focus()
        await pilot.press("o")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ReplayScreen")
        transcript = app.screen.query_one("#replay-transcript")
        n_turns = len(app.screen.traj["turns"])
        assert len(transcript.entries) == 2  # turn by turn: the header and turn 1
        belief = app.screen.query_one("#replay-belief")
        assert belief.turn_index == 1
        await pilot.press("down")
        assert len(transcript.entries) == 3 and belief.turn_index == 2
        await pilot.press("end")
        assert len(transcript.entries) == 1 + n_turns + 1  # every turn, then the outcome
        await pilot.press("home", "down", "c", "m")
        assert app.clipboard == app.screen.traj["turns"][1]["message"]
        session_id = app.screen.traj["id"]
        assert (tmp_path / f"session-{session_id}.md").read_text().startswith("# ")
        await pilot.press("j")  # the same trajectory line as `ptom-lab sessions export --format jsonl`
        exported = tmp_path / f"session-{session_id}.jsonl"
        await wait_for(pilot, lambda: exported.exists())
        assert json.loads(exported.read_text()) == session_trajectory(Store(db), session_id)
        await pilot.press("escape", "a")  # archiving asks first: Escape keeps the session
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "Confirm")
        await pilot.press("escape")
        await pilot.pause(0.3)
        assert table.row_count == 4 and Store(db).get_session(session_id)["archived"] == 0
        await pilot.press("a", "y")
        await wait_for(pilot, lambda: table.row_count == 3)
        assert Store(db).get_session(session_id)["archived"] == 1


async def test_a_pane_action_in_its_own_pane_keeps_the_focus(db):
    """Clearing the filters while typing a search leaves the cursor in the search box (it used to jump to the
    table, and the next keys were lost)."""
    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f6")
        await wait_for(pilot, lambda: app.query_one("#sessions-table", DataTable).row_count == 4)
        search = app.query_one("#sessions-search", Input)
        search.focus()
        await pilot.pause()
        app.action_pane("sessions", "clear_filters")
        await pilot.pause()
        await pilot.press(*"hiring")
        assert app.focused is search and search.value == "hiring"


TRAINER = """
import sys, time
from engine.store import Store
from engine.pipeline.training import runs
store = Store(sys.argv[1])
run_id = runs.start_run(store, {}, backend="local", method="sft", base_model="m", data_path="d", output_dir="o",
                        name="live", run_id="live-run")
runs.update_run(store, run_id, total_steps=10)
for step in range(1, 11):
    time.sleep(0.5)  # the app polls the store: on a loaded machine 0.3 s a step could pass unseen
    runs.add_step(store, run_id, {"step": step, "loss": 2.0 / step, "tokens_per_s": 100.0, "eta_s": 0.5 * (10 - step)})
runs.finish_run(store, run_id, {"train_loss": 0.2})
"""


async def test_follow_a_training_run_written_by_another_process(db):
    """Training: a run that another process writes (as `ptom-lab finetune` in a second terminal would) appears
    by itself and is followed live: the progress is seen part-way, then at the end with the run finished."""
    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        trainer = subprocess.Popen([sys.executable, "-c", TRAINER, db])
        try:
            seen: set[float] = set()

            def done() -> bool:
                bar = app.query_one("#training-progress", ProgressBar)
                if app.query_one("TrainingPane").run_id == "live-run":
                    seen.add(bar.progress)
                return bar.progress == 10 and "finished" in str(app.query_one("#training-status").content)

            await wait_for(pilot, done, timeout=30)
        finally:
            trainer.wait(timeout=30)
        assert trainer.returncode == 0
        assert seen & set(range(1, 10)), f"never saw the run part-way: {sorted(seen)}"
        assert len(app.query_one("#training-log", RichLog).lines) >= 10
        assert "step 10/10" in str(app.query_one("#training-status").content)


async def test_overlapping_polls_show_each_training_step_once(tmp_path):
    """Two polls can be in flight at once on a slow machine (the one-second timer fires while the first read
    runs); both deliver the same new steps, and the log and the curve must hold each step once."""
    from tui_fixtures import build_store

    from engine.pipeline.training import runs

    path = str(tmp_path / "fixed.db")
    build_store(path).close()
    app = LabApp(path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        pane = app.query_one("TrainingPane")
        await wait_for(pilot, lambda: len(pane.steps) == 20)
        with app.worker_store() as store:
            listing, run = runs.list_runs(store, 50), runs.get_run(store, pane.run_id)
            rows = store.training_steps(pane.run_id, 0)
        pane.follow(pane.run_id)
        pane._show(listing, run, rows)  # the reply of the poll `follow` started, then of the timer's poll
        pane._show(listing, run, rows)
        # and the real reads (the one `follow` started, the timer's) deliver them again
        await wait_for(pilot, lambda: not any(w.is_running for w in app.workers if w.group == "training-poll"))
        await pilot.pause()
        assert [r["step"] for r in pane.steps] == list(range(1, 21))
        shown = [line.text for line in app.query_one("#training-log", RichLog).lines]
        assert [line.split()[1] for line in shown if line.startswith("step ")] == [f"{s}/20" for s in range(1, 21)]


async def test_evaluation_leaderboard_ranks_runs_with_intervals(db):
    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f5")
        table = app.query_one("#eval-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2)
        # ranked by engine.pipeline.leaderboard as `compare` ranks, with the 95% (Wilson) interval and its columns
        assert [table.get_row_at(i)[1] for i in range(2)] == ["greedy-vs-rational", "reveal-all-vs-rational"]
        first = dict(zip([str(c.label) for c in table.columns.values()], table.get_row_at(0), strict=True))
        assert first["success"] == "67%" and first["95% interval"] == "39%–86%" and first["games"] == "12"
        assert first["persuader"] == "greedy-hidden" and first["lies"] == "0" and first["cost"] == "$0.0000"
        assert {"turns", "align", "CF acc"} <= first.keys()


async def test_data_pane_stats_preview_and_prepare(db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        app.query_one("#data-n", Input).value = "3"
        app.query_one("#data-path", Input).value = "traj.jsonl"
        await pilot.press("ctrl+g")
        stats = app.query_one("#data-stats")
        await wait_for(pilot, lambda: "3 conversation(s)" in str(stats.content), timeout=30)
        assert len((tmp_path / "traj.jsonl").read_text().splitlines()) == 3
        app.query_one("#data-format", Select).value = "chatml"
        preview = app.query_one("#data-preview", RichLog)
        await wait_for(pilot, lambda: any('"messages"' in line.text for line in preview.lines))
        app.query_one("#data-format", Select).value = "kto"
        await wait_for(pilot, lambda: any('"label"' in line.text for line in preview.lines))
        # generating again into the same file asks first; Escape keeps the file, y replaces it
        app.query_one("#data-n", Input).value = "4"
        app.query_one("#data-repeats", Input).value = "2"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "Confirm")
        await pilot.press("escape")
        assert len((tmp_path / "traj.jsonl").read_text().splitlines()) == 3
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "Confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: "4 conversation(s)" in str(stats.content), timeout=30)
        lines = [json.loads(x) for x in (tmp_path / "traj.jsonl").read_text().splitlines()]
        assert len(lines) == 4 and lines[0]["scenario"] == lines[1]["scenario"]  # repeats share a scenario


async def test_help_screen_and_command_palette(db):
    app = LabApp(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        assert app.screen.__class__.__name__ == "HelpScreen"
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {a[4] for a in ACTIONS} <= titles and {f"Go to {p[1]}" for p in PANES} <= titles
        await pilot.press("escape", "ctrl+p")
        await pilot.press(*"sessions")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.query_one(TabbedContent).active == "sessions")


async def test_launch_an_evaluation_and_see_it_ranked(db):
    """Evaluation: Ctrl+E runs `ptom-lab evaluate` in a child process with the pane's settings; the run shows up
    and lands in the leaderboard with its interval when it finishes."""
    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.query_one("#eval-table", DataTable).row_count == 2)
        app.query_one("#eval-model", Input).value = "random"
        app.query_one("#eval-n", Input).value = "6"
        await pilot.press("ctrl+e")
        table = app.query_one("#eval-table", DataTable)

        def ranked() -> bool:
            rows = [table.get_row_at(i) for i in range(table.row_count)]
            return any(r[2] == "random-hidden" and r[-1] == "finished" for r in rows)

        await wait_for(pilot, ranked, timeout=60)
        columns = [str(c.label) for c in table.columns.values()]
        (row,) = [dict(zip(columns, table.get_row_at(i), strict=True)) for i in range(table.row_count)
                  if table.get_row_at(i)[2] == "random-hidden"]
        assert row["games"] == "6" and "%–" in row["95% interval"]
        assert not [n for n in app._notifications if n.severity == "error"]
        # Enter on it: its games per personality, with the disclosures the target's own words had ruled out
        table.focus()
        table.move_cursor(row=[table.get_row_at(i)[2] for i in range(table.row_count)].index("random-hidden"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "EvalDetail")
        detail = app.screen.query_one("#detail-personalities", DataTable)
        await wait_for(pilot, lambda: detail.row_count == 1)
        cells = dict(zip([str(c.label) for c in detail.columns.values()], detail.get_row_at(0), strict=True))
        assert cells["games"] == "6" and re.fullmatch(r"\d+ / \d+", cells["ruled out"])


async def test_sessions_page_through_a_big_store(db):
    """Sessions reads a page at a time: with 254 sessions, n and p move through pages of 100 and the count is exact."""
    store = Store(db)
    first = store.list_sessions(limit=1)[0]
    with store.transaction():
        store.db["sessions"].insert_all(
            {**first, "id": f"bulk{i:04d}", "created_at": f"2025-06-01T00:{i // 60:02d}:{i % 60:02d}+00:00"}
            for i in range(250))
    store.close()
    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f6")
        status = lambda: str(app.query_one("#sessions-status").content)  # noqa: E731
        await wait_for(pilot, lambda: status().startswith("1-100 of 254"))
        app.query_one("#sessions-table", DataTable).focus()
        await pilot.press("n")
        await wait_for(pilot, lambda: status().startswith("101-200 of 254"))
        await pilot.press("n")
        await wait_for(pilot, lambda: status().startswith("201-254 of 254"))
        await pilot.press("n", "p")  # no page after the last; back one
        await wait_for(pilot, lambda: status().startswith("101-200 of 254"))


class _SlowStream(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible server that streams a long reply a word every 50 ms (the shape vLLM and llama.cpp
    send), so that a reply is still being generated when Escape is pressed."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            for i in range(400):
                chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "tiny",
                         "choices": [{"index": 0, "delta": {"content": f"word{i} "}, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                time.sleep(0.05)
            self.wfile.write(b"data: [DONE]\n\n")
        except (BrokenPipeError, ConnectionResetError):  # the client hung up: what Escape does
            self.server.hung_up = True  # type: ignore[attr-defined]

    def log_message(self, *args: object) -> None:
        pass


async def play_a_model_against_rational(app: LabApp, pilot, server: http.server.HTTPServer) -> None:
    """Arena: an openai-compatible persuader served by `server` against the rational target, Play pressed."""
    await wait_for(pilot, lambda: app.query_one("#arena-persuader", Select).value == "planner")
    app.query_one("#arena-persuader", Select).value = "openai-compatible"
    app.query_one("#arena-persuader-arg", Input).value = f"http://127.0.0.1:{server.server_port}/v1:tiny"
    app.query_one("#arena-target", Select).value = "rational"
    await pilot.press("ctrl+n", "enter")


@pytest.fixture
def slow_server():
    """A local OpenAI-compatible server whose streamed reply takes long (`_SlowStream`); shut down after the test."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowStream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


async def test_escape_stops_a_reply_while_it_streams(db, slow_server):
    """Arena with a model persuader: its reply streams into the pane word by word; Escape stops it mid-reply and
    the game is stored as interrupted."""
    app = LabApp(db)
    async with app.run_test(size=(100, 30)) as pilot:
        await play_a_model_against_rational(app, pilot, slow_server)
        stream = app.query_one("#arena-stream")
        await wait_for(pilot, lambda: "word5 " in str(stream.content), timeout=30)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.query_one("ArenaPane").game.is_running, timeout=10)
        assert "word399" not in app.query_one("ArenaPane").streamed
    (row,) = Store(db).list_sessions(kind="arena")
    assert row["status"] == "interrupted" and row["persuader"].startswith("openai-compatible")


def _job_process(tmp_path, db: str, code: str) -> jobs.JobProcess:
    """A stand-in for a started job: a child running `code`, its output in a log, as `jobs.start` makes one."""
    log = tmp_path / "job.log"
    job = jobs.Job("finetune", TrainConfig(data="d.jsonl", output="models/long"), db, run="models/long")
    with open(log, "wb") as fh:
        child = subprocess.Popen([sys.executable, "-c", code], stdout=fh, stderr=subprocess.STDOUT)
    return jobs.JobProcess(job, child, log)


async def test_question_mark_opens_the_help_but_types_in_a_box(db):
    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f6")
        search = app.query_one("#sessions-search", Input)
        search.focus()
        await pilot.press("question_mark")
        assert search.value == "?" and app.screen is app.main
        app.query_one("#sessions-table", DataTable).focus()
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "HelpScreen")


async def test_a_running_evaluations_warning_is_on_screen(db):
    """A run started from the pane plays in a child process; its warning (an adapter trained on another prompt
    layout) reaches the screen through the run's row: a notification once, and the status line while it runs."""
    note = "warning: local:models/old was trained on prompt layout 1; this lab writes layout 2"
    store = Store(db)
    store.add_eval_run({"id": "warn00000001", "name": "old-adapter", "persuader": "local:models/old",
                        "target": "rational", "config_json": "{}", "status": "running", "n_planned": 10, "notes": note})
    store.close()
    app = LabApp(db)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("f5")
        status = app.query_one("#eval-status", Label)
        await wait_for(pilot, lambda: note in str(status.content))
        assert "running old-adapter: 0/10 games" in str(status.content)
        assert [str(n.message) for n in app._notifications].count(note) == 1
        app.query_one(EvaluationPane).poll()
        await pilot.pause(0.3)
        assert [str(n.message) for n in app._notifications].count(note) == 1  # once per run, not per poll


async def test_ctrl_e_twice_starts_one_evaluation(db):
    """The second Ctrl+E, while the first run plays, is refused. The first run's human is the embedded language
    model, so it is still loading torch at the second key even on a loaded machine (3 rule-based games could end
    before it, and a second run is then rightly started); it is stopped once the keys are checked."""
    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.query_one("#eval-table", DataTable).row_count == 2)
        app.query_one("#eval-model", Input).value = "random"
        app.query_one("#eval-human", Input).value = "local?max_tokens=4"
        app.query_one("#eval-n", Input).value = "3"
        await pilot.press("ctrl+e", "ctrl+e")
        try:
            assert len(app.jobs) == 1 and app.jobs[0][0].job.kind == "evaluate"
            assert app.jobs[0][0].job.settings.human_agent == "local?max_tokens=4"
            assert any("already running" in str(n.message) for n in app._notifications)
        finally:
            for process, _ in app.jobs:
                os.killpg(process.pid, signal.SIGTERM)  # its own session: the child and anything it started


async def test_quitting_while_a_run_trains_asks_and_leaves_it_running(db, tmp_path):
    app = LabApp(db)
    process = _job_process(tmp_path, db, "import time; time.sleep(60)")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            app.jobs.append((process, app))
            await pilot.press("ctrl+q")
            await wait_for(pilot, lambda: app.screen.__class__.__name__ == "Confirm")
            assert "training run models/long" in str(app.screen.question) and str(process.pid) in app.screen.question
            await pilot.press("escape")  # stay
            assert app.is_running
            await pilot.press("ctrl+q", "y")
            await wait_for(pilot, lambda: not app.is_running, timeout=5)
        assert process.poll() is None  # the run goes on
    finally:
        process.process.kill()
        process.process.wait()


async def test_a_failed_job_opens_its_whole_log(db, tmp_path):
    code = "import sys; print('loading the model'); print('Traceback: line 1\\nValueError: bad rows'); sys.exit(1)"
    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        app.jobs.append((_job_process(tmp_path, db, code), app))
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ErrorScreen")
        text = app.screen.query_one("#error-detail").text
        assert "loading the model" in text and "ValueError: bad rows" in text
        await pilot.press("escape")
        assert app.screen is app.main and not app.jobs


async def test_a_crashed_worker_shows_its_traceback(db):
    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        def boom() -> None:
            raise RuntimeError("disk on fire")

        # a pane's worker: Textual tells only the pane, which passes it on to the app
        app.query_one("ArenaPane").run_worker(boom, name="reading the store", thread=True, exit_on_error=False)
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ErrorScreen")
        assert "reading the store failed" in str(app.screen.query_one("#error-title").content)
        text = app.screen.query_one("#error-detail").text
        assert "Traceback" in text and "RuntimeError: disk on fire" in text
        await pilot.press("escape")
        app.run_worker(boom, name="an app worker", thread=True, exit_on_error=False)  # and the app's own
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ErrorScreen")
        assert "an app worker failed" in str(app.screen.query_one("#error-title").content)


async def test_arena_dropdowns_offer_no_blank_and_list_offline_players_first(db):
    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.query_one("#arena-target", Select).value == "me")
        # every pane has finished mounting (the Data pane's file list last) before the app closes
        await wait_for(pilot, lambda: app.query_one("#data-found", Select).prompt != "found .jsonl")
        for name in ("scenario", "persuader", "target", "personality"):
            select = app.query_one(f"#arena-{name}", Select)
            assert Select.NULL not in [value for _, value in select._options] and not select.disabled
        targets = [value for _, value in app.query_one("#arena-target", Select)._options]
        assert targets[0] == "rational" and targets.index("rational") < targets.index("openai")


async def open_new_run_form(pilot) -> None:
    """Ctrl+T, then wait until the form's fields are there (the screen is pushed a frame before they mount)."""
    app = pilot.app
    await pilot.press("ctrl+t")
    await wait_for(pilot, lambda: app.screen.__class__.__name__ == "NewRunForm" and app.screen.query("#form-method"))


async def test_a_refused_training_run_keeps_the_form(db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rows.jsonl").write_text("{}\n")
    (tmp_path / "models" / "taken").mkdir(parents=True)
    (tmp_path / "models" / "taken" / "train.log").write_text("another run\n")
    app = LabApp(db)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_new_run_form(pilot)
        app.screen.query_one("#form-data", Input).value = "rows.jsonl"
        app.screen.query_one("#form-output", Input).value = "models/taken"
        app.screen.query_one("#form-batch_size", Input).value = "8"
        await pilot.pause()  # laid out: the click lands on the button
        await pilot.click("#form-start")
        await wait_for(pilot, lambda: any("holds another run" in str(n.message) for n in app._notifications))
        assert not app.jobs
        await open_new_run_form(pilot)
        assert app.screen.query_one("#form-output", Input).value == "models/taken"
        assert app.screen.query_one("#form-batch_size", Input).value == "8"


async def test_letters_typed_in_the_search_box_never_act_on_the_table(db):
    """`a` archives and `o` replays only from the table: typed in the search box they are text."""
    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f6")
        await wait_for(pilot, lambda: app.query_one("#sessions-table", DataTable).row_count == 4)
        search = app.query_one("#sessions-search", Input)
        search.focus()
        await pilot.press(*"oapnr")
        await pilot.pause(0.3)
        assert search.value == "oapnr" and app.screen is app.main
        assert Store(db).count_sessions() == 4


async def test_the_training_pane_follows_the_running_run_not_the_newest(tmp_path):
    """After a restart the pane shows the run that is training, even when a newer one has ended."""
    from engine.pipeline.training import runs

    path = str(tmp_path / "s.db")
    store = build_store(path)
    runs.start_run(store, {}, backend="local", method="sft", base_model="m", data_path="d", output_dir="o",
                   name="live", run_id="live-run")  # this (living) process trains it
    with store.transaction():
        store.db.execute("UPDATE training_runs SET created_at = '2025-01-01T00:00:00' WHERE id = 'live-run'")
    store.close()
    app = LabApp(path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        pane = app.query_one("TrainingPane")
        await wait_for(pilot, lambda: pane.run_id == "live-run")
        await pilot.pause(1.5)  # the next polls keep it
        assert pane.run_id == "live-run"


async def test_a_failed_prepare_replaces_the_last_success_in_the_status(db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        stats = app.query_one("#data-stats")
        await wait_for(pilot, lambda: app.query_one("#data-path", Input).value == "trajectories.jsonl")
        app.query_one("#data-path", Input).value = "missing.jsonl"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: "prepare failed" in str(stats.content))
        assert "no trajectory file 'missing.jsonl'" in str(stats.content)
        assert any("missing.jsonl" in str(n.message) for n in app._notifications if n.severity == "error")



async def test_play_the_target_in_plain_words_with_answer_buttons(db):
    """Arena as the target: plain words in the box, each question answered with its row of buttons (like /
    don't care / dislike, one per proposal), nothing asked twice, and the game ended with a proposal button."""
    from textual.widgets import Button

    from engine.store import session_episode
    from ptom_tui.widgets.target_answer import TargetAnswer

    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.query_one("#arena-target", Select).value == "me")
        await pilot.press("ctrl+n", "enter")
        pane, answers, box = app.query_one("ArenaPane"), app.query_one(TargetAnswer), app.query_one("#arena-reply")
        asked = 0
        while True:
            await wait_for(pilot, lambda: not box.disabled or not pane.game.is_running)
            request = answers.request
            if not pane.game.is_running or not request.words:
                break
            await pilot.press(*"cheap matters to me")
            for row in answers.query(".answer-row"):
                button = row.query(Button).last()  # dislike; the last proposal
                await pilot.click(button)
                assert button.variant == "primary"
                asked += 1
            assert app.focused is box  # the last pick hands the focus back: Enter sends
            await pilot.press("enter")
            assert box.value == "" and asked < 30  # sent
        assert asked >= 2 and request.questions[0].final and answers.display  # every answer taken at the first ask
        assert "final choice" in str(app.query_one("#arena-prompt").content)
        await pilot.click(next(b for b in answers.query(Button) if str(b.label).startswith("B")))
        await wait_for(pilot, lambda: not pane.game.is_running)
        store = Store(db)
        (row,) = store.list_sessions(kind="arena")
        assert row["status"] == "finished" and row["choice"] == "B"
        turns = session_episode(store, row["id"]).turns
        said = [st for t in turns for st in t.statements if st.kind in ("preference", "choice")]
        assert said and all(st.value == -1 for st in said if st.kind == "preference")
        assert all(st.subject == "C" for st in said if st.kind == "choice")
        assert all(t.target_reply.startswith("cheap matters to me.") for t in turns)
        assert not answers.display


async def test_an_invalid_target_answer_is_refused_with_the_reason(db):
    """Arena as the target: a typed answer naming an attribute and a proposal the scenario lacks is not taken; the
    reason is shown and the reply is asked for again."""
    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.query_one("#arena-target", Select).value == "me")
        await pilot.press("ctrl+n", "enter")
        box, prompt = app.query_one("#arena-reply", Input), app.query_one("#arena-prompt")
        await wait_for(pilot, lambda: not box.disabled)
        await pilot.press(*"PREFERS: luxury +7; CHOICE: Z", "enter")
        await wait_for(pilot, lambda: not box.disabled and "Not taken" in str(prompt.content))
        assert "there is no attribute 'luxury'" in str(prompt.content)
        assert "there is no proposal 'Z'" in str(prompt.content)
        assert app.query_one("ArenaPane").game.is_running
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.query_one("ArenaPane").game.is_running)


async def test_data_prepare_takes_val_only_successful_and_test_scenarios_and_shows_the_summary(db, tmp_path,
                                                                                               monkeypatch):
    """Prepare from the pane with the CLI's --val, --only-successful and --test-scenarios: the splits are written,
    only won conversations are kept, and the preview shows `prepare`'s summary (tokens per split, the longest
    examples, the price); the file list labels the trajectory file and the prepared ones by kind, in full."""
    from engine.pipeline.trajectories import GenerationPlan

    monkeypatch.chdir(tmp_path)
    jobs.run(jobs.generate_job(GenerationPlan(n=8), "traj.jsonl", db), say=lambda text: None)
    trajectories = [json.loads(line) for line in (tmp_path / "traj.jsonl").read_text().splitlines()]
    held_out = trajectories[0]["scenario"]["id"]
    (tmp_path / "test.txt").write_text(held_out + "\n")
    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await wait_for(pilot, lambda: app.query_one("#data-found", Select).prompt != "found .jsonl")
        app.query_one("#data-path", Input).value = "traj.jsonl"
        app.query_one("#data-val", Input).value = "0.3"
        app.query_one("#data-test-scenarios", Input).value = "test.txt"
        app.query_one("#data-only-successful").value = True
        await pilot.press("ctrl+r")
        stats = app.query_one("#data-stats")
        await wait_for(pilot, lambda: "Prepared chatml rows" in str(stats.content), timeout=60)
        preview = "\n".join(line.text for line in app.query_one("#data-preview", RichLog).lines)
        assert "tokens" in preview and "longest examples" in preview and "OpenAI fine-tune" in preview
        assert "val" in preview and "test" in preview
        test_rows = [json.loads(x) for x in (tmp_path / "training_data.test.jsonl").read_text().splitlines()]
        train_rows = [json.loads(x) for x in (tmp_path / "training_data.jsonl").read_text().splitlines()]
        assert (tmp_path / "training_data.val.jsonl").exists()
        assert {r["meta"]["scenario"] for r in test_rows} <= {held_out}
        assert held_out not in {r["meta"]["scenario"] for r in train_rows}
        assert all(r["meta"]["success"] for r in train_rows + test_rows)
        found = app.query_one("#data-found", Select)
        await wait_for(pilot, lambda: any(str(label) == "prepared chat: training_data.jsonl"
                                          for label, _ in found._options))
        labels = [str(label) for label, value in found._options if value is not Select.NULL]
        assert labels[0] == "trajectories: traj.jsonl"  # the file this pane loads first, then the prepared ones
        assert {"prepared chat: training_data.val.jsonl", "prepared chat: training_data.test.jsonl"} <= set(labels)


async def test_finetune_refuses_a_folder_that_holds_another_run_in_the_tui(db, tmp_path, monkeypatch):
    """The form's output folder of a stored run (the fixture's `fixed-run`, in models/fixed) is refused with the
    run's name, as `ptom-lab finetune --output` refuses it; nothing starts."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rows.jsonl").write_text("{}\n")
    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_new_run_form(pilot)
        app.screen.query_one("#form-data", Input).value = "rows.jsonl"
        app.screen.query_one("#form-output", Input).value = "models/fixed"
        await pilot.pause()
        await pilot.click("#form-start")
        await wait_for(pilot, lambda: any("holds training run fixed-run" in str(n.message) for n in app._notifications))
        assert not app.jobs


async def test_the_runs_table_shows_the_loss_of_a_running_run(tmp_path):
    """While a run trains (no final metrics yet) its `loss` cell is its latest logged step's loss, not `-`."""
    from engine.pipeline.training import runs

    path = str(tmp_path / "s.db")
    store = build_store(path)
    run_id = runs.start_run(store, {}, backend="local", method="sft", base_model="m", data_path="d",
                            output_dir="models/live", name="live", run_id="live-run")  # this living process trains it
    for step, loss in ((1, 2.5), (2, 1.75)):
        runs.add_step(store, run_id, {"step": step, "loss": loss})
    store.close()
    app = LabApp(path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f4")
        table = app.query_one("#training-runs", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2)
        cells = {table.get_row_at(i)[0]: table.get_row_at(i) for i in range(table.row_count)}
        assert cells["live-run"][1] == "running" and cells["live-run"][4] == "1.750"
        assert cells["fixed-run"][4] == "1.200"  # a finished run keeps its final loss


async def _start_as_the_persuader(app, pilot) -> None:
    """The researcher persuades the rule-based human in the Arena, up to the first message box."""
    await wait_for(pilot, lambda: app.query_one("#arena-target", Select).value == "me")
    app.query_one("#arena-persuader", Select).value = "me"
    app.query_one("#arena-target", Select).value = "rational"
    await pilot.press("ctrl+n", "enter")
    await wait_for(pilot, lambda: not app.query_one("#arena-reply", Input).disabled)


async def test_play_as_the_persuader_with_the_move_builder(db):
    """Arena, the researcher persuades: the builder offers each proposal's true facts only, with the true effect
    filled in; the moves it builds reach the target, and a built `conclude` ends the game."""
    from engine.game.scenario import ScenarioLibrary

    scenario = ScenarioLibrary().get("business_vacation")
    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await _start_as_the_persuader(app, pilot)
        assert app.query_one("#arena-moves").display
        assert "ask_preference travel" in app.query_one("#arena-reply", Input).placeholder  # the scenario's own ids
        assert app.query_one("#arena-brief-box").max_scroll_y == 0  # the whole brief in sight at 120x40
        proposal, attribute = app.query_one("#move-proposal", Select), app.query_one("#move-attribute", Select)
        for pid in scenario.proposal_ids:
            proposal.value = pid
            await pilot.pause(0.1)
            offered = [str(label) for label, _ in attribute._options]
            assert offered == [f"{a}={scenario.effect((pid, a)):+d}" for p, a in scenario.facts if p == pid]
        proposal.value = "A"
        await pilot.pause(0.1)
        attribute.value = "bonding"
        await pilot.click("#move-add")
        app.query_one("#move-kind", Select).value = "ask_preference"
        await pilot.pause(0.1)
        app.query_one("#move-attribute", Select).value = "travel"
        await pilot.click("#move-add")
        await pilot.press(*"Lisbon brings us together.", "enter")
        await wait_for(pilot, lambda: len(app.query_one("#arena-transcript").entries) >= 2)
        await wait_for(pilot, lambda: not app.query_one("#arena-reply", Input).disabled)
        app.query_one("#move-kind", Select).value = "conclude"
        await pilot.pause(0.1)  # the proposal and attribute lists close: the button moves left
        await pilot.click("#move-add")
        await pilot.press(*"Time to decide.", "enter")
        await wait_for(pilot, lambda: not app.query_one("ArenaPane").game.is_running)
    (row,) = Store(db).list_sessions(kind="arena")
    first, last = Store(db).turns(row["id"])
    assert row["status"] == "finished" and row["persuader"] == "me"
    assert json.loads(first["moves_json"]) == ["disclose A.bonding=+1", "ask_preference travel"]
    assert first["message"] == "Lisbon brings us together." and "A.bonding" in json.loads(first["target_state_json"])["knows"]
    assert json.loads(last["moves_json"]) == ["conclude"]


async def test_a_persuader_message_with_no_move_warns_before_it_is_sent(db):
    """A message without a move would spend a turn on a plain appeal: the first Enter warns and keeps the text,
    the second sends it."""
    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await _start_as_the_persuader(app, pilot)
        box = app.query_one("#arena-reply", Input)
        await pilot.press(*"Pick Lisbon", "enter")
        await pilot.pause(0.3)
        assert any("no move" in str(n.message) for n in app._notifications)
        assert box.value == "Pick Lisbon" and not box.disabled and not app.query_one("#arena-transcript").entries[1:]
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(app.query_one("#arena-transcript").entries) >= 2)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.query_one("ArenaPane").game.is_running)
    (row,) = Store(db).list_sessions(kind="arena")
    (turn,) = Store(db).turns(row["id"])
    assert turn["message"] == "Pick Lisbon" and json.loads(turn["moves_json"]) == []


async def test_a_model_turn_shows_elapsed_time_and_escape_stops_the_generation(db, slow_server):
    """From Play until the model's reply lands a status line counts the seconds; Escape ends the game and stops
    the generation itself: the server sees the client hang up long before its reply would end."""
    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await play_a_model_against_rational(app, pilot, slow_server)
        status = app.query_one("#arena-status")
        seconds = lambda: float(str(status.content).split()[1])  # noqa: E731 - "Playing: 1.2 s · ..."
        await wait_for(pilot, lambda: status.display and seconds() >= 1.0)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.query_one("ArenaPane").game.is_running, timeout=10)
        await wait_for(pilot, lambda: getattr(slow_server, "hung_up", False), timeout=5)
        assert not status.display
    (row,) = Store(db).list_sessions(kind="arena")
    assert row["status"] == "interrupted"


async def test_escape_sets_the_cancel_event_the_games_model_calls_see(db, monkeypatch):
    """A local model's `generate` stops on the event `cancel_on` gives the game's thread: Escape must set it."""
    from engine.game import episode as episode_module
    from engine.llm.base import current_cancel

    seen: list[threading.Event | None] = []

    def play(*_args, **_kwargs):  # stands in for a game whose model is generating: it waits for the cancel
        seen.append(current_cancel())
        if not seen[0] or not seen[0].wait(timeout=10):
            raise AssertionError("the game's thread saw no cancel event")
        raise KeyboardInterrupt

    monkeypatch.setattr(episode_module, "play", play)
    app = LabApp(db)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.query_one("#arena-target", Select).value == "me")
        await pilot.press("ctrl+n", "enter")
        await wait_for(pilot, lambda: len(seen) == 1)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.query_one("ArenaPane").game.is_running)
    assert seen[0] is not None and seen[0].is_set()
    assert current_cancel() is None  # only the game's thread had one


async def test_the_training_form_offers_the_file_just_prepared(db, tmp_path, monkeypatch):
    """Prepare into a file of one's own name in Data, then Ctrl+T: the form's training file is that file, not the
    default `training_data.jsonl` that also lies in the folder."""
    from engine.pipeline.trajectories import GenerationPlan

    monkeypatch.chdir(tmp_path)
    (tmp_path / "training_data.jsonl").write_text("{}\n")  # an older prepare's file
    jobs.run(jobs.generate_job(GenerationPlan(n=3), "traj.jsonl", db), say=lambda text: None)
    app = LabApp(db)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_new_run_form(pilot)
        assert app.screen.query_one("#form-data", Input).value == "training_data.jsonl"
        await pilot.press("escape", "f3")
        await wait_for(pilot, lambda: app.query_one("#data-found", Select).prompt != "found .jsonl")
        app.query_one("#data-path", Input).value = "traj.jsonl"
        app.query_one("#data-out", Input).value = "mine.jsonl"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: "Prepared" in str(app.query_one("#data-stats").content), timeout=60)
        await open_new_run_form(pilot)
        assert app.screen.query_one("#form-data", Input).value == "mine.jsonl"
