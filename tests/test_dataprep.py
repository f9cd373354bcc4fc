"""Data prep: examples are exactly what a persuader sees at play time, splits never leak, bad input is named."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from engine.errors import LabError
from engine.game.episode import play
from engine.game.generator import signature
from engine.game.interfaces import Persuader, PersuaderTurn
from engine.game.moves import Move, parse_reply
from engine.game.record import Episode
from engine.game.scenario import load_file, write_jsonl
from engine.pipeline.dataprep import (
    PrepareOptions,
    ScenarioCache,
    assign_splits,
    check_disjoint,
    dpo_pairs,
    prepare,
    record_dataset,
    sha256_file,
    split_path,
    to_prompt_completion,
    turn_examples,
)
from engine.pipeline.trajectories import TrajectoryError
from engine.players.persuaders.baselines import RandomPersuader, RevealAll
from engine.players.prompts import messages_for_view
from engine.players.targets.rational import PERSONALITIES, RationalTarget

SMALL = ("business_vacation", "family_holiday", "city_budget", "hiring_decision", "apartment_hunt", "dinner_party")


class Recording(Persuader):
    """Wraps a persuader and keeps the prompt an LM persuader would be sent at each turn."""

    def __init__(self, inner: Persuader) -> None:
        self.inner, self.name, self.seen = inner, inner.name, []

    def start(self, view, seed):
        self.inner.start(view, seed)

    def act(self, view):
        self.seen.append(messages_for_view(view))
        return self.inner.act(view)


class ConcludeNow(Persuader):
    """Ends the game at once: from the first state it is the worse move when the goal needs persuading."""

    name = "conclude-now"

    def act(self, view):
        return PersuaderTurn("Let us decide now.", [Move("appeal"), Move("conclude")])


def write(path, rows) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def read(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def trajs() -> list[dict]:
    from engine.game.scenario import ScenarioLibrary

    lib = ScenarioLibrary()
    out = []
    for i in range(36):
        persuader = RandomPersuader() if i % 3 else RevealAll()
        ep = play(
            lib.get(SMALL[i % len(SMALL)]), persuader, RationalTarget(), personality=list(PERSONALITIES)[i % 6],
            seed=i, condition="revealed" if i % 4 == 0 else "hidden",
        )
        out.append(ep.to_trajectory())
    return out


@pytest.fixture
def src(tmp_path, trajs):
    path = tmp_path / "trajectories.jsonl"
    write(path, trajs)
    return path


@pytest.mark.parametrize("condition", ["hidden", "revealed"])
def test_examples_are_what_the_persuader_saw(business, condition):
    rec = Recording(RandomPersuader())
    traj = play(business, rec, RationalTarget(), seed=5, condition=condition).to_trajectory()
    examples = turn_examples(Episode.model_validate(traj))
    assert [e.prompt for e in examples] == rec.seen  # trained on exactly the play-time prompt
    system = examples[0].prompt[0]["content"]
    assert ("Target's preferences" in system) == (condition == "revealed")
    for ex, turn in zip(examples, traj["turns"], strict=True):
        parsed = parse_reply(ex.completion["content"])
        assert parsed.ok and [m.text() for m in parsed.moves] == turn["moves"] and parsed.message == turn["message"]
        assert ex.kind == "good" and ex.success == traj["outcome"]["success"]


def test_bad_turns_never_sft_targets_and_kto_labels_them_undesirable(tmp_path, business):
    traj = play(business, RevealAll(), RationalTarget(), seed=1).to_trajectory()
    assert traj["outcome"]["success"]
    traj["turns"][0].update(parse_ok=False, parse_error="no MOVES", raw="I think we should go to Lisbon!!")
    traj["turns"][1]["refused"] = ["disclose A.cost=+1 contradicts the fact A.cost=-1"]
    no_raw = json.loads(json.dumps(traj))
    no_raw["id"] = "second"
    no_raw["turns"][0].pop("raw")
    path = tmp_path / "t.jsonl"
    write(path, [traj, no_raw])
    n = len(traj["turns"])
    sft = prepare(PrepareOptions(str(path), str(tmp_path / "sft.jsonl"), "chatml"))
    rows = read(tmp_path / "sft.jsonl")
    assert len(rows) == 2 * (n - 2) and {r["meta"]["turn"] for r in rows} == set(range(3, n + 1))
    assert sft.summary["skipped"] == {"parse_failure (not an SFT target)": 2, "refused_lie (not an SFT target)": 2}
    prepare(PrepareOptions(str(path), str(tmp_path / "kto.jsonl"), "kto"))
    kto = read(tmp_path / "kto.jsonl")
    assert len(kto) == 2 * n - 1  # the parse failure without raw text has nothing to show
    assert kto[0]["completion"][0]["content"] == "I think we should go to Lisbon!!" and kto[0]["label"] is False
    assert kto[1]["label"] is False and all(r["label"] for r in kto[2:n])


def test_formats(tmp_path, src):
    out = {}
    for fmt in ("chatml", "sharegpt", "openai", "kto"):
        prepare(PrepareOptions(str(src), str(tmp_path / f"{fmt}.jsonl"), fmt))
        out[fmt] = read(tmp_path / f"{fmt}.jsonl")
    assert len({len(rows) for rows in out.values()}) == 1
    chat = out["chatml"][0]
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant"]
    assert set(chat["meta"]) >= {"conversation", "scenario", "turn", "success"}
    assert out["openai"][0] == {"messages": chat["messages"]}
    assert [c["from"] for c in out["sharegpt"][0]["conversations"]] == ["system", "human", "gpt"]
    assert out["kto"][0] == {"prompt": chat["messages"][:2], "completion": chat["messages"][2:], "label": chat["meta"]["success"]}
    for fmt in ("chatml", "openai", "sharegpt", "kto"):
        assert to_prompt_completion(out[fmt][0]) == {"prompt": chat["messages"][:2], "completion": chat["messages"][2:]}
    with pytest.raises(LabError, match="assistant"):
        to_prompt_completion({"messages": chat["messages"][:2]})


def test_dpo_pairs_from_the_same_state(tmp_path, business):
    good = play(business, RevealAll(), RationalTarget(), personality="cooperative", seed=4).to_trajectory()
    bad = play(business, ConcludeNow(), RationalTarget(), personality="cooperative", seed=4).to_trajectory()
    other = play(business, ConcludeNow(), RationalTarget(), personality="stubborn", seed=4).to_trajectory()
    assert good["outcome"]["success"] and not bad["outcome"]["success"]
    path = tmp_path / "t.jsonl"
    write(path, [good, bad, other])
    examples = [e for t in (good, bad, other) for e in turn_examples(Episode.model_validate(t))]
    pairs = dpo_pairs(examples)
    assert len(pairs) == 1  # only turn 1 of the same personality shares a state; `other` differs in personality
    chosen, rejected, rate_c, rate_r = pairs[0]
    assert (chosen.conversation, rejected.conversation, rate_c, rate_r) == (good["id"], bad["id"], 1.0, 0.0)
    prepared = prepare(PrepareOptions(str(path), str(tmp_path / "dpo.jsonl"), "dpo"))
    (row,) = read(tmp_path / "dpo.jsonl")
    assert row["prompt"] == chosen.prompt and row["chosen"] != row["rejected"]
    assert "conclude" in row["rejected"][0]["content"] and "disclose" in row["chosen"][0]["content"]
    assert prepared.summary["splits"]["train"]["dpo_states"] == 1


def test_val_split_by_scenario_is_seeded(tmp_path, src):
    a = prepare(PrepareOptions(str(src), str(tmp_path / "a.jsonl"), "chatml", val=0.34, seed=3))
    prepare(PrepareOptions(str(src), str(tmp_path / "b.jsonl"), "chatml", val=0.34, seed=3))
    assert set(a.files) == {"train", "val"} and a.files["val"] == tmp_path / "a.val.jsonl"
    assert (tmp_path / "a.val.jsonl").read_text() == (tmp_path / "b.val.jsonl").read_text()
    train = {r["meta"]["scenario"] for r in read(tmp_path / "a.jsonl")}
    val = {r["meta"]["scenario"] for r in read(tmp_path / "a.val.jsonl")}
    assert len(val) == 2 and len(train) == 4 and not train & val
    keys = [(r["meta"]["scenario"], r["meta"]["scenario"]) for r in read(tmp_path / "a.jsonl") + read(tmp_path / "a.val.jsonl")]
    draws = {tuple(sorted(k for k, s in zip(keys, assign_splits(keys, 0.34, seed), strict=True) if s == "val")) for seed in range(8)}
    assert len(draws) > 1  # the seed decides which scenarios are held out


def test_held_out_scenarios_never_in_training(tmp_path, trajs):
    heldout = load_file("scenarios/heldout.jsonl")[:3]
    extra = []
    for i, s in enumerate(heldout):
        extra.append(play(s, RevealAll(), RationalTarget(), seed=i).to_trajectory())
    # the same game under another id must still count as held out (scenario signature)
    renamed = replace(heldout[0], id="innocent-looking")
    assert signature(renamed) == signature(heldout[0])
    extra.append(play(renamed, RevealAll(), RationalTarget(), seed=9).to_trajectory())
    path = tmp_path / "t.jsonl"
    write(path, trajs + extra)
    test_file = tmp_path / "heldout.jsonl"
    write_jsonl(heldout, test_file)
    prepared = prepare(
        PrepareOptions(str(path), str(tmp_path / "td.jsonl"), "chatml", val=0.2, test_scenarios=str(test_file))
    )
    assert set(prepared.files) == {"train", "val", "test"}
    held_ids = {s.id for s in heldout} | {"innocent-looking"}
    for split in ("train", "val"):
        assert not {r["meta"]["scenario"] for r in read(split_path(tmp_path / "td.jsonl", split))} & held_ids
    assert {r["meta"]["scenario"] for r in read(tmp_path / "td.test.jsonl")} == held_ids
    assert prepared.summary["splits"]["test"]["conversations"] == 4
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("business_vacation\n")
    prepare(PrepareOptions(str(path), str(tmp_path / "x.jsonl"), "chatml", test_scenarios=str(ids_file)))
    assert "business_vacation" not in {r["meta"]["scenario"] for r in read(tmp_path / "x.jsonl")}


def test_groups_join_ids_and_signatures():
    keys = [("a", "s1"), ("b", "s1"), ("c", "s2"), ("c", "s3"), ("d", "s4"), ("e", "s5")]
    splits = assign_splits(keys, 0.0, 0, test_ids={"b"})
    assert splits[:2] == ["test", "test"] and "test" not in splits[2:]
    for seed in range(20):
        splits = assign_splits(keys, 0.5, seed)
        assert splits[0] == splits[1] and splits[2] == splits[3]
        assert 0 < splits.count("val") < len(keys)
        check_disjoint(keys, splits, set(), set())
    with pytest.raises(LabError, match="leak"):
        check_disjoint(keys, ["train", "val", "train", "train", "train", "train"], set(), set())
    with pytest.raises(LabError, match="--val"):
        assign_splits(keys, 1.5)


def test_max_tokens_reported_not_cut(tmp_path, src):
    full = prepare(PrepareOptions(str(src), str(tmp_path / "a.jsonl"), "chatml"))
    limit = sorted(r["tokens"] for r in full.summary["longest"])[0] - 1
    capped = prepare(PrepareOptions(str(src), str(tmp_path / "b.jsonl"), "chatml", max_tokens=limit))
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    over = capped.summary["over_max_tokens"]
    assert len(over) >= 5 and all(o["tokens"] > limit for o in over)
    longest = full.summary["longest"][0]
    assert longest["tokens"] == full.summary["splits"]["train"]["max_example_tokens"]


def test_bad_lines_stop_or_are_counted(tmp_path, trajs):
    path = tmp_path / "t.jsonl"
    broken = dict(trajs[1], condition="sideways")
    write(path, [trajs[0], "{not json", broken, trajs[2]])
    with pytest.raises(TrajectoryError, match=r"t\.jsonl:2"):
        prepare(PrepareOptions(str(path), str(tmp_path / "o.jsonl"), "chatml"))
    prepared = prepare(PrepareOptions(str(path), str(tmp_path / "o.jsonl"), "chatml", skip_bad=True))
    assert [b["line"] for b in prepared.summary["bad_lines"]] == [2, 3]
    assert "condition" in prepared.summary["bad_lines"][1]["reason"]
    assert prepared.summary["splits"]["train"]["conversations"] == 2
    with pytest.raises(LabError, match="overwrite"):
        prepare(PrepareOptions(str(path), str(path), "chatml"))


def test_recorded_in_the_store(tmp_path, src, store):
    prepared = prepare(PrepareOptions(str(src), str(tmp_path / "td.jsonl"), "kto", val=0.2))
    ids = record_dataset(store, prepared, "kto")
    rows = {r["split"]: r for r in store.db["datasets"].rows}
    assert set(rows) == {"train", "val"} and len(ids) == 2
    train = rows["train"]
    assert train["sha256"] == sha256_file(tmp_path / "td.jsonl") and train["format"] == "kto"
    assert train["n_examples"] == prepared.rows["train"] == len(read(tmp_path / "td.jsonl"))
    assert train["n_tokens"] == prepared.summary["splits"]["train"]["tokens"] > 0
    assert train["source"] == str(src.resolve())
    assert json.loads(train["summary_json"])["splits"]["val"]["examples"] == prepared.rows["val"]
    assert record_dataset(store, prepared, "kto") == ids  # the same file again: the same row
    assert store.db["datasets"].count == 2


def test_scenario_cache_reuses(trajs):
    cache = ScenarioCache()
    a, sig = cache.get(Episode.model_validate(trajs[0]).scenario)
    b, _ = cache.get(Episode.model_validate(json.loads(json.dumps(trajs[0]))).scenario)
    assert a is b and sig == signature(a)


def test_only_successful_and_self_belief(tmp_path, src, business):
    prepared = prepare(PrepareOptions(str(src), str(tmp_path / "ok.jsonl"), "chatml", only_successful=True))
    rows = read(tmp_path / "ok.jsonl")
    assert rows and all(r["meta"]["success"] for r in rows)
    assert prepared.summary["skipped"]["turn of a failed conversation (--only-successful)"] > 0
    traj = play(business, RevealAll(), RationalTarget(), seed=2).to_trajectory()
    belief = {"preferences": {"cost": {"like": 0.1, "neutral": 0.2, "dislike": 0.7}}, "predicted_choice": "B", "p_goal": 0.3}
    traj["turns"][0]["belief"] = belief
    ep = Episode.model_validate(traj)
    plain, mine = turn_examples(ep)[0], turn_examples(ep, self_belief=True)[0]
    assert "Belief about the target: cost like 0.10" in plain.prompt[1]["content"]  # last: it changes every turn
    assert "Belief" not in plain.prompt[0]["content"] and "Turn 1" not in plain.prompt[0]["content"]
    assert "BELIEF:" not in plain.completion["content"]
    assert "Belief about the target" not in mine.prompt[1]["content"]  # the model states its own belief instead
    assert mine.completion["content"].startswith("BELIEF: cost like 0.10")


def test_progress_counts_every_conversation_then_tokens_then_files(tmp_path, src):
    heard: list[tuple[int, int, str]] = []
    prepare(PrepareOptions(str(src), str(tmp_path / "p.jsonl"), "chatml"), lambda *step: heard.append(step))
    n = sum(1 for line in Path(src).read_text().splitlines() if line.strip())
    assert [d for d, _, _ in heard] == list(range(1, n + 3))
    assert {t for _, t, _ in heard} == {n + 2}
    assert heard[-2][2] == "tokens counted" and heard[-1][2] == "written"


@pytest.mark.parametrize("fmt", ["chatml", "kto"])
def test_batches_change_nothing_and_a_failure_writes_nothing(tmp_path, trajs, monkeypatch, fmt):
    import engine.pipeline.dataprep as dataprep

    path = tmp_path / "t.jsonl"
    write(path, [*trajs, *trajs[:6]])  # copies under new ids: more conversations of the same scenarios
    rows = path.read_text().splitlines()
    for i in range(len(trajs), len(rows)):
        rows[i] = json.dumps(dict(json.loads(rows[i]), id=f"again-{i}"))
    path.write_text("\n".join(rows) + "\n")
    whole = prepare(PrepareOptions(str(path), str(tmp_path / "whole.jsonl"), fmt, val=0.2))
    monkeypatch.setattr(dataprep, "BATCH", 4)
    batched = prepare(PrepareOptions(str(path), str(tmp_path / "batched.jsonl"), fmt, val=0.2))
    for split in ("", ".val"):
        assert (tmp_path / f"whole{split}.jsonl").read_text() == (tmp_path / f"batched{split}.jsonl").read_text()
    assert whole.summary["splits"]["train"]["tokens"] == batched.summary["splits"]["train"]["tokens"] > 0
    path.write_text("\n".join([*rows, "{broken"]) + "\n")  # a bad last line: found after rows were written
    with pytest.raises(TrajectoryError, match=rf"t\.jsonl:{len(rows) + 1}"):
        prepare(PrepareOptions(str(path), str(tmp_path / "failed.jsonl"), fmt, val=0.2))
    assert not list(tmp_path.glob("*failed*")) and not list(tmp_path.glob(".*.tmp"))


def test_compact_reply_format_matches_play_and_is_recorded(tmp_path, src, business):
    rec = Recording(RandomPersuader())
    traj = play(business, rec, RationalTarget(), seed=5).to_trajectory()
    traj["turns"][0]["reasoning"] = "She may not know B is cheap."
    traj["turns"][0]["counterfactual"] = {"move": "ask_choice", "p_goal_before": 0.4, "p_goal_after": 0.5}
    ep = Episode.model_validate(traj)
    full, compact = turn_examples(ep)[0], turn_examples(ep, reply="compact")[0]
    assert full.completion["content"].startswith("REASONING: She may not know")
    assert "COUNTERFACTUAL: ask_choice -> P(goal) 0.40 -> 0.50" in full.completion["content"]
    assert compact.completion["content"].startswith("MOVES: ") and "REASONING" not in compact.completion["content"]
    assert parse_reply(compact.completion["content"]).message == traj["turns"][0]["message"]
    # the prompt is the one the persuader spec's ?reply=compact sends at play time
    assert "Reply with MOVES, MESSAGE (MESSAGE: one or two sentences)." in compact.prompt[0]["content"]
    assert "Reply with REASONING, COUNTERFACTUAL, MOVES, MESSAGE." in full.prompt[0]["content"]
    assert full.prompt == rec.seen[0]
    prepared = prepare(PrepareOptions(str(src), str(tmp_path / "c.jsonl"), "chatml", reply_format="compact"))
    assert prepared.summary["reply_format"] == "compact"
    assert all("REASONING:" not in r["messages"][-1]["content"] for r in read(tmp_path / "c.jsonl"))
    moves = turn_examples(ep, reply="moves")[0]  # MOVES alone; the prompt asks for nothing else
    assert moves.completion["content"] == compact.completion["content"].partition("\n")[0]
    assert "Reply with MOVES. MOVES: any of" in moves.prompt[0]["content"]
    assert parse_reply(moves.completion["content"], with_message=False).ok
    with pytest.raises(LabError, match="unknown reply format 'terse'"):
        prepare(PrepareOptions(str(src), str(tmp_path / "t.jsonl"), "chatml", reply_format="terse"))
