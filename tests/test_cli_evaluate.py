"""`ptom-lab evaluate` and `ptom-lab compare` end to end with rule-based players."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from engine.cli import main
from engine.game.scenario import DEFAULT_DIR
from engine.llm.base import Backend, ChatResult
from engine.players.persuaders.llm import LLMPersuader
from engine.players.registry import register_persuader
from engine.store import Store


def test_evaluate_prints_results_and_resumes(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    args = ["evaluate", "--db", db, "--model", "greedy", "--scenarios", "scenarios/heldout.jsonl",
            "--num-eval", "6", "--personality", "mix", "--concurrency", "2", "--name", "g"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "6 played, 0 resumed" in out and "success" in out and "95% CI" in out
    assert "the target's stated preferences had ruled out" in out
    assert main(args) == 0
    assert "0 played, 6 resumed" in capsys.readouterr().out


def test_compare_models_writes_the_leaderboard(tmp_path, capsys):
    db, out_dir = str(tmp_path / "s.db"), tmp_path / "lb"
    args = ["compare", "--db", db, "--models", "reveal-all,random", "--num-eval", "5", "--max-turns", "3",
            "--out", str(out_dir)]
    assert main(args) == 0
    captured = capsys.readouterr()  # not a terminal: the table as tab-separated rows, the notes on stderr
    assert captured.out.startswith("rank\tlabel\t") and "\treveal-all-hidden\treveal-all\t" in captured.out
    assert "McNemar" in captured.err
    board = json.loads((out_dir / "leaderboard.json").read_text())
    assert {e["agent"] for e in board["entries"]} == {"reveal-all", "random"}
    assert (out_dir / "leaderboard.md").exists() and (out_dir / "leaderboard.png").exists()
    # the runs are stored: compare them again by name
    names = [e["run"] for e in board["entries"]]
    assert main(["compare", "--db", db, *names, "--out", str(out_dir)]) == 0


def test_bad_input_is_one_line(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    assert main(["evaluate", "--db", db, "--model", "nobody", "--num-eval", "1"]) != 0
    assert "unknown persuader 'nobody'" in capsys.readouterr().err
    assert main(["compare", "--db", db]) != 0
    assert "compare:" in capsys.readouterr().err


def test_api_failure_errors_one_episode_and_the_run_goes_on(tmp_path, capsys, monkeypatch):
    from tests.fake_api import FakeAPI, point_sdks_at

    with FakeAPI("MOVES: conclude\nMESSAGE: Please decide now.") as api:
        point_sdks_at(api, monkeypatch)
        api.fail_with([500] * 5)  # the SDK's first try and 4 retries of the first episode's first call
        args = ["evaluate", "--db", str(tmp_path / "s.db"), "--model", "openai:gpt-4o-mini", "--num-eval", "3",
                "--name", "api"]
        assert main(args) == 0
    captured = capsys.readouterr()
    assert "errored: OpenAI request for gpt-4o-mini failed: HTTP 500" in captured.err  # with the progress bar
    assert "success        " in captured.out and "/2 = " in captured.out  # 2 scored episodes: the errored one is out
    assert "errored 1 (not in the rates)" in captured.out
    assert "tokens 0+0" not in captured.out  # the two played episodes' usage is counted


def test_both_conditions_are_also_reported_apart(tmp_path, capsys):
    args = ["evaluate", "--db", str(tmp_path / "s.db"), "--model", "planner", "--num-eval", "4", "--condition", "both",
            "--seeds", "2", "--personality", "mix"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "8 played" not in out and "16 played" in out  # 4 scenarios x 2 seeds x 2 conditions
    assert "  hidden       " in out and "  revealed     " in out


def test_seed_is_a_replication_recorded_in_the_run(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    base = ["evaluate", "--db", db, "--model", "random", "--num-eval", "40"]
    assert main([*base, "--name", "s0"]) == 0
    assert main([*base, "--name", "s1", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    first, second = re.findall(r"success +(\d+)/40", out)
    assert first != second  # the same episodes' plan, independent draws
    store = Store(db)
    assert [json.loads(store.find_eval_run(n)["config_json"])["seed"] for n in ("s0", "s1")] == [0, 1]
    store.close()
    assert main([*base, "--name", "s1", "--seed", "2"]) != 0
    assert "seed: 1 -> 2" in capsys.readouterr().err


def test_shipped_scenarios_resolve_from_any_folder(tmp_path):
    """Run as an installed tool from a folder that is not the repository: the defaults still find scenarios/."""

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "engine", *args], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)

    res = cli("evaluate", "--model", "random", "--num-eval", "3", "--db", "here.db")
    assert res.returncode == 0, res.stderr
    assert "3 played" in res.stdout and (tmp_path / "here.db").exists()
    res = cli("scenarios", "list")
    assert res.returncode == 0 and "business_vacation" in res.stdout, res.stderr
    (tmp_path / "scenarios").mkdir()  # a user's own relative path is read from the current folder
    (tmp_path / "scenarios" / "mine.yaml").write_text((DEFAULT_DIR / "dinner_party.yaml").read_text())
    res = cli("scenarios", "validate", "scenarios/mine.yaml")
    assert res.returncode == 0 and "1 scenario(s)" in res.stdout, res.stderr
    res = cli("scenarios", "validate", "scenarios/nothing.yaml")
    assert res.returncode != 0 and "scenarios/nothing.yaml: no such file" in res.stderr


def test_more_scenarios_than_the_file_holds_is_refused(tmp_path, capsys):
    assert main(["evaluate", "--db", str(tmp_path / "s.db"), "--model", "planner", "--num-eval", "500"]) == 2
    assert "--num-eval 500: scenarios/heldout.jsonl holds only 100 scenario(s); pass --num-eval 100 or fewer" in (
        capsys.readouterr().err)


def test_a_run_whose_every_episode_errors_fails_and_is_marked_errored(tmp_path, capsys, monkeypatch):
    from tests.fake_api import FakeAPI, point_sdks_at

    with FakeAPI() as api:
        point_sdks_at(api, monkeypatch)
        api.fail_with([401] * 2)  # a bad key: not retried, every episode's first call fails
        args = ["evaluate", "--db", str(tmp_path / "s.db"), "--model", "openai:gpt-4o-mini", "--num-eval", "2",
                "--name", "nokey"]
        assert main(args) == 2
    err = capsys.readouterr().err
    assert "error: every episode of run nokey errored (first: OpenAI request for gpt-4o-mini failed: HTTP 401" in err
    assert Store(tmp_path / "s.db").find_eval_run("nokey")["status"] == "errored"


class _Concluder(Backend):
    """A model that always concludes in the full reply format."""

    provider, model = "fake", "adapter-compact"

    def chat(self, messages, options=None) -> ChatResult:
        return ChatResult("REASONING: enough.\nCOUNTERFACTUAL: none\nMOVES: conclude\nMESSAGE: Please decide.", 5, 5)


# an adapter trained on the compact format, played with reply=full (what `local:ADAPTER?reply=full` builds)
register_persuader("test-mistrained", lambda _spec: LLMPersuader(_Concluder(), reply="full", trained_reply="compact"),
                   "test only")


def test_a_reply_format_the_model_was_not_trained_on_is_one_warning_and_the_run_goes_on(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    assert main(["evaluate", "--db", db, "--model", "test-mistrained", "--num-eval", "3", "--max-turns", "1"]) == 0
    captured = capsys.readouterr()  # the warning on stderr, with the progress bar; once, not once per episode
    assert captured.err.count("was trained on the compact reply format but plays with reply=full") == 1
    assert "3 played" in captured.out
    assert main(["play", "--db", db, "--persuader", "test-mistrained", "--max-turns", "1", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("results will suffer") == 1 and "leave out ?reply= to play the compact format" in err
    assert LLMPersuader(_Concluder(), reply="compact", trained_reply="compact").format_warning is None
    assert LLMPersuader(_Concluder()).format_warning is None  # a base model: nothing recorded, nothing to warn
