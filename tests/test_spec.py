"""The one player-spec grammar: round trip, the options each kind declares, the README's specs, lists and aliases."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from engine.cli import build_parser, main
from engine.errors import LabError
from engine.pipeline.trajectories import parse_mix
from engine.players.registry import canonical, make_persuader, make_target, spec_list
from engine.players.spec import PlayerSpec, parse, parse_weighted

README = Path(__file__).resolve().parents[1] / "README.md"

CANONICAL = [
    "planner", "planner:weak", "planner?noise=0.3&asks=1", "planner:weak?salt=2", "greedy", "rational", "me",
    "local", "local:models/base+models/lora?4bit=1", "local?temperature=0&max_tokens=320&dtype=bfloat16",
    "openai:gpt-4o?belief=self", "anthropic:claude-sonnet-4-6", "gpt-4o-mini", "claude-sonnet-4?temperature=0",
    "openai-compatible:http://localhost:11434/v1:llama3.1:8b?belief=self&temperature=0.2",
]


@pytest.mark.parametrize("text", CANONICAL)
def test_canonical_text_round_trips(text):
    spec = parse(text)
    assert str(spec) == text and parse(str(spec)) == spec


def test_parts_and_specs_built_in_code():
    spec = parse("openai-compatible:http://h:8000/v1:org/model,x?temperature=0&max_tokens=9")
    assert (spec.kind, spec.argument) == ("openai-compatible", "http://h:8000/v1:org/model,x")
    assert spec.options == {"temperature": "0", "max_tokens": "9"}  # in the order written
    built = PlayerSpec("planner", "weak").with_options(salt="1").with_options(noise="0.1")
    assert str(built) == "planner:weak?salt=1&noise=0.1" and parse(str(built)) == built
    assert str(built.without("salt")) == "planner:weak?noise=0.1"
    assert parse("local:?temperature=0") == parse("local?temperature=0")
    with pytest.raises(LabError, match="may not hold '\\?'"):
        PlayerSpec("local", "a?b")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models/x", "not a player spec.*local:models/x"),
        ("planner?noise", "option 'noise' is not KEY=VALUE"),
        ("planner?noise=1&noise=2", "option 'noise' is given twice"),
        ("", "not a player spec"),
    ],
)
def test_grammar_errors_are_one_clear_line(text, message):
    with pytest.raises(LabError, match=message):
        parse(text)


@pytest.mark.parametrize(
    ("text", "role", "message"),
    [
        ("reveal-all?note=x", "persuader", r"unknown option 'note' for the persuader 'reveal-all' \(its options: none\)"),
        ("random?note=x", "persuader", r"unknown option 'note' for the persuader 'random' \(its options: conclude, disclose\)"),
        ("greedy:fast", "persuader", "'greedy' takes no argument, not 'fast'"),
        ("rational?temperature=0", "human agent", "unknown option 'temperature' for the human agent 'rational'"),
        ("planner?speed=1", "persuader", r"its options: noise, asks, per, salt"),
        ("planner:strong", "persuader", "takes the argument weak, not 'strong'"),
        ("local?colour=red", "persuader", "its options: belief, reply, structured, fresh, conclude, disclose, max_tokens, temperature, 4bit, dtype"),
        ("local?belief=self", "human agent", "belief is for persuaders"),
        ("gpt-4o-mini:gpt-5", "persuader", "names its model"),
    ],
)
def test_every_kind_checks_its_options(text, role, message):
    with pytest.raises(LabError, match=message):
        canonical(text, role)


def test_the_older_planner_form_reads_as_options():
    assert str(canonical("planner:noise=0.3,asks=1")) == "planner?noise=0.3&asks=1"
    assert str(canonical("planner:weak,salt=2")) == "planner:weak?salt=2"
    assert make_persuader("planner:asks=0").name == "planner?asks=0"
    assert make_persuader("planner").name == "planner"


def test_spec_lists_never_split_inside_a_spec():
    assert [str(s) for s in spec_list(["planner:asks=1,per=2", "greedy"])] == ["planner?asks=1&per=2", "greedy"]
    assert [str(s) for s in spec_list(["planner?asks=1&per=2", "greedy"])] == ["planner?asks=1&per=2", "greedy"]
    assert [str(s) for s in spec_list(["reveal-all,random"])] == ["reveal-all", "random"]  # the old list form
    with pytest.raises(LabError, match="give each spec as its own value"):
        spec_list(["planner:asks=1,per=2,greedy"])  # the case: no reading of it is valid
    with pytest.raises(LabError, match="reads both as one spec and as 2"):
        spec_list(["planner?noise=0.3,greedy"])  # `0.3,greedy` could be the value: the user must choose


def test_compare_takes_a_spec_with_commas_as_its_own_value(tmp_path, capsys):
    args = ["compare", "--db", str(tmp_path / "s.db"), "--models", "planner:asks=1,per=2", "greedy", "--num-eval", "2",
            "--max-turns", "2", "--out", str(tmp_path / "lb"), "--json"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["agent"] for r in rows} == {"planner?asks=1&per=2", "greedy"}
    assert {"planner?asks=1&per=2-hidden", "greedy-hidden"} == {r["label"] for r in rows}


def test_mix_weights():
    assert parse_weighted("planner?noise=0.3@0.4") == (parse("planner?noise=0.3"), 0.4)
    assert parse_mix(["planner", "planner:weak@2"]) == [("planner", 1.0), ("planner:weak", 2.0)]
    with pytest.raises(LabError, match="SPEC@WEIGHT"):
        parse_weighted("planner@0")


def _readme_commands() -> list[list[str]]:
    """Every `ptom-lab ...` command in the README's code blocks, continuation lines joined, as argv."""
    text = README.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words and re.match(r"^[A-Z_]+=", words[0]):  # OMP_NUM_THREADS=1 and API keys
                words.pop(0)
            if words and words[0].endswith("ptom-lab") and len(words) > 1 and "..." not in words:  # not elided
                commands.append(words[1:])
    return commands


def _persuader_specs(args) -> list:
    """The persuader specs a parsed command holds (none for commands that take no player)."""
    if args.command == "play":
        return [args.persuader]
    if args.command == "generate":
        return [s for s, _ in parse_mix(args.mix)] if args.mix else [args.persuader]
    if args.command == "evaluate":
        return [args.model]
    return spec_list(args.models) if args.command == "compare" else []


def test_every_spec_in_the_readme_commands_parses():
    parser = build_parser()
    seen = 0
    for argv in _readme_commands():
        args, _other_flags = parser.parse_known_args(argv)  # the flags themselves are other tests' subject
        for spec in _persuader_specs(args):
            canonical(spec, "persuader")
            seen += 1
        if target := getattr(args, "target", None) or getattr(args, "human_agent", None):
            canonical(target, "human agent")
            seen += 1
    assert seen >= 20  # the README shows a good many


def test_aliases_play_every_role(monkeypatch):
    from tests.fake_api import FakeAPI, point_sdks_at

    with FakeAPI() as api:
        point_sdks_at(api, monkeypatch)
        persuader = make_persuader("gpt-4o-mini?temperature=0")
        target = make_target("claude-sonnet-4")
    assert (persuader.backend.model, persuader.name, persuader.options.temperature) == ("gpt-4o-mini", "gpt-4o-mini", 0.0)
    assert (target.backend.model, target.name) == ("claude-sonnet-4-6", "claude-sonnet-4")
    assert str(canonical("claude-haiku-4?belief=self")) == "claude-haiku-4?belief=self"
