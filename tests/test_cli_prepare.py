"""`ptom-lab prepare` as a user runs it, and `prepare check-openai` naming every breach of the API's rules."""

from __future__ import annotations

import json

import pytest

from engine.cli import main
from engine.game.episode import play
from engine.game.scenario import ScenarioLibrary
from engine.pipeline.openai_format import example_breaches, validate_file
from engine.players.persuaders.baselines import RandomPersuader
from engine.players.targets.rational import PERSONALITIES, RationalTarget
from engine.store import Store

GOOD = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    lib = ScenarioLibrary()
    path = tmp_path_factory.mktemp("traj") / "trajectories.jsonl"
    ids = ("business_vacation", "family_holiday", "city_budget", "dinner_party")
    with open(path, "w") as fh:
        for i in range(16):
            ep = play(lib.get(ids[i % 4]), RandomPersuader(), RationalTarget(), personality=list(PERSONALITIES)[i % 6], seed=i)
            fh.write(json.dumps(ep.to_trajectory()) + "\n")
    return path


def write(path, rows) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def test_prepare_prints_the_summary_and_records_the_files(tmp_path, src, capsys):
    db = str(tmp_path / "s.db")
    out_file = tmp_path / "training_data.jsonl"
    code = main(["prepare", "--db", db, "--input", str(src), "--output", str(out_file), "--format", "openai",
                 "--val", "0.25", "--max-tokens", "300", "--epochs", "2"])
    out = capsys.readouterr().out
    assert code == 0
    for text in ("conversations", "success", "tokens", "longest examples", "over --max-tokens 300",
                 "x 2 epochs", "gpt-4o-mini-2024-07-18", "training_data.val.jsonl", "recorded in the store"):
        assert text in out, text
    rows = {r["split"]: r for r in Store(db).db["datasets"].rows}
    assert set(rows) == {"train", "val"} and rows["train"]["path"] == str(out_file.resolve())
    # the written openai file passes the validator command
    assert main(["prepare", "check-openai", str(out_file)]) == 0
    assert "follow the OpenAI fine-tuning rules" in capsys.readouterr().out


def test_bad_line_is_one_error_line_or_skipped(tmp_path, src, capsys):
    bad = tmp_path / "bad.jsonl"
    lines = src.read_text().splitlines()
    bad.write_text("\n".join([lines[0], '{"id": "x"}', *lines[1:4]]) + "\n")
    db = str(tmp_path / "s.db")
    assert main(["prepare", "--db", db, "-i", str(bad), "-o", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["prepare", "--db", db, "-i", str(bad), "-o", str(tmp_path / "o.jsonl"), "--skip-bad"]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 bad lines" in out and "line 2:" in out
    assert main(["prepare", "--db", db]) == 2
    assert "--input" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("example", "code"),
    [
        ([1, 2], "data_type"),
        ({"messages": []}, "missing_messages_list"),
        ({"prompt": "x"}, "missing_messages_list"),
        ({"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]}, "message_missing_key"),
        ({"messages": [{"role": "user", "content": "u", "extra": 1}, {"role": "assistant", "content": "a"}]}, "message_unrecognized_key"),
        ({"messages": [{"role": "human", "content": "u"}, {"role": "assistant", "content": "a"}]}, "unrecognized_role"),
        ({"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "  "}]}, "missing_content"),
        ({"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": 5}]}, "missing_content"),
        ({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}, "example_missing_assistant_message"),
        ({"messages": [{"role": "user", "content": "u", "weight": 1}, {"role": "assistant", "content": "a"}]}, "bad_weight"),
        ({**GOOD, "meta": {}}, "unrecognized_key"),
    ],
)
def test_each_rule_is_checked(example, code):
    assert code in [c for c, _ in example_breaches(example)]


def test_good_example_and_function_calls_pass():
    assert example_breaches(GOOD) == []
    call = {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function"}]}
    assert example_breaches({"messages": [{"role": "user", "content": "u"}, call]}) == []
    assert example_breaches({"messages": [*GOOD["messages"][:2], {**GOOD["messages"][2], "weight": 0}]}) == []


def test_validator_names_file_and_line(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    long = {"messages": [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}]}
    no_assistant = {"messages": GOOD["messages"][:2]}
    write(path, [GOOD] * 9 + ["{oops", no_assistant, long, ""])
    report = validate_file(path, token_limit=100)
    found = [(b.line, b.code) for b in report.breaches]
    assert found == [(10, "invalid_json"), (11, "example_missing_assistant_message"), (12, "example_too_long"), (13, "blank_line")]
    assert report.examples == 11 and not report.ok
    assert main(["prepare", "check-openai", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:11: example_missing_assistant_message" in out
    assert f"{path}:10: invalid_json" in out and "3 breaches in 11 examples" in out  # the CLI applies the 65,536-token limit
    assert main(["prepare", "check-openai", str(tmp_path / "missing.jsonl")]) == 2
    write(path, [GOOD] * 9)
    assert [(b.line, b.code) for b in validate_file(path).breaches] == [(0, "too_few_examples")]
    assert main(["prepare", "check-openai", str(path)]) == 1
    assert f"{path}: too_few_examples: 9 examples; the API needs at least 10" in capsys.readouterr().out
    write(path, [GOOD] * 10)
    assert validate_file(path, token_limit=100).ok


def test_openai_file_too_small_is_warned(tmp_path, src, capsys):
    lines = src.read_text().splitlines()[:1]
    small = tmp_path / "one.jsonl"
    small.write_text(lines[0] + "\n")
    assert main(["prepare", "--db", str(tmp_path / "s.db"), "-i", str(small), "-o", str(tmp_path / "o.jsonl"), "-f", "openai"]) == 0
    assert "the fine-tuning API needs at least 10" in capsys.readouterr().out


def test_dpo_without_pairs_writes_nothing_and_says_why(tmp_path, src, capsys):
    out_file = tmp_path / "pairs.jsonl"  # every conversation has its own seed: no state is played twice
    assert main(["prepare", "--db", str(tmp_path / "s.db"), "-i", str(src), "-o", str(out_file), "-f", "dpo"]) == 2
    assert "no DPO pair" in capsys.readouterr().err
    assert not out_file.exists()


def test_output_into_a_missing_folder_is_refused_by_name(tmp_path, src, capsys):
    out_file = tmp_path / "no" / "such" / "train.jsonl"
    assert main(["prepare", "--db", str(tmp_path / "s.db"), "-i", str(src), "-o", str(out_file)]) == 2
    assert f"--output {out_file}: the folder {out_file.parent} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()
