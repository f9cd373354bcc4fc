"""Trajectories to training files (DESIGN.md 2): SFT, ShareGPT, OpenAI, KTO and DPO, split by scenario.

Every example is built by `engine.prompts` alone (system = the persuader's side of the scenario + the turn's
belief, + the hidden state in the *revealed* condition; user = the dialogue so far; assistant =
`assistant_text(turn)`), so a model is trained on exactly what it sees at play time.

Which turns teach what (the policy, in one place: `Example.kind`):
- `good` turns (parsed, no lie) are the SFT targets (`chatml`, `sharegpt`, `openai`) and KTO examples labelled by
  the conversation's success; they are the only ones a DPO pair may *choose*.
- `refused_lie` turns (a disclosure the loop refused as false) are never SFT targets; in KTO they are labelled
  undesirable whatever the outcome, and in DPO they may be *rejected*.
- `parse_failure` turns (the model's reply did not parse) are never SFT targets either: the salvaged moves are not
  what the model wrote. KTO labels the raw reply undesirable (skipped when no raw text was kept); DPO leaves them out.
Nothing is dropped silently: every skipped turn is counted in the summary.

Splits are by scenario: conversations are grouped so that two sharing a scenario id *or* a scenario signature
(`engine.generator.signature`) are in one group; `--test-scenarios` sends every group touching a held-out id or
signature to the test file, and `--val` draws a seeded fraction of the remaining groups. `check_disjoint`
verifies the result before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import LabError
from engine.game import HiddenState, persuader_side
from engine.generator import signature
from engine.jsonl import write_json_lines
from engine.prompts import assistant_text, history_from_turns, persuader_messages
from engine.scenario import Scenario, load_file

FORMATS = ("chatml", "sharegpt", "openai", "kto", "dpo")
SFT_FORMATS = ("chatml", "sharegpt", "openai")
SPLITS = ("train", "val", "test")
SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}
Message = dict[str, str]


@dataclass
class Example:
    """One persuader turn as a training example, with what the formats and the summary need to know."""

    conversation: str
    scenario_id: str
    turn: int
    success: bool
    kind: str  # good | refused_lie | parse_failure
    prompt: list[Message]  # [system, user]
    completion: Message  # assistant
    state: tuple  # same scenario, personality, target seed, condition and dialogue so far: same state
    moves: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def messages(self) -> list[Message]:
        return [*self.prompt, self.completion]


# ----- scenarios -----------------------------------------------------------------------------------
class ScenarioCache:
    """Scenario objects and signatures for trajectory scenario dicts, built once per distinct scenario."""

    def __init__(self) -> None:
        self._by_key: dict[str, tuple[Scenario, str]] = {}

    def get(self, data: Mapping[str, Any]) -> tuple[Scenario, str]:
        key = json.dumps(data, sort_keys=True)
        if key not in self._by_key:
            scenario = Scenario.from_dict({**data, "check_interesting": False}, f"scenario '{data.get('id')}'")
            self._by_key[key] = (scenario, signature(scenario))
        return self._by_key[key]


# ----- examples ------------------------------------------------------------------------------------
def turn_examples(traj: Mapping[str, Any], cache: ScenarioCache | None = None, self_belief: bool = False) -> list[Example]:
    """One example per persuader turn of a validated trajectory (see the module docstring for `kind`)."""
    scenario, sig = (cache or ScenarioCache()).get(traj["scenario"])
    side = persuader_side(scenario)
    condition = traj["condition"]
    revealed = HiddenState(dict(scenario.preferences), scenario.target_knows) if condition == "revealed" else None
    target = traj.get("target") or {}
    success = bool(traj["outcome"]["success"])
    turns = traj["turns"]
    out = []
    for i, turn in enumerate(turns):
        prompt = persuader_messages(side, i + 1, history_from_turns(turns[:i]), turn.get("belief"), revealed, self_belief)
        if turn.get("parse_ok", True) is False:
            kind, text = "parse_failure", (turn.get("raw") or "").strip()
        else:
            kind = "refused_lie" if turn.get("refused") else "good"
            text = assistant_text(turn, self_belief)
        out.append(
            Example(
                conversation=traj["id"],
                scenario_id=scenario.id,
                turn=i + 1,
                success=success,
                kind=kind,
                prompt=prompt,
                completion={"role": "assistant", "content": text},
                state=(sig, target.get("personality", ""), target.get("seed"), condition, prompt[0]["content"], prompt[1]["content"]),
                moves=tuple(turn.get("moves", [])),
                meta={
                    "conversation": traj["id"], "scenario": scenario.id, "turn": i + 1, "success": success,
                    "condition": condition, "persuader": (traj.get("persuader") or {}).get("name", ""),
                },
            )
        )
    return out


# ----- formats -------------------------------------------------------------------------------------
def sft_row(ex: Example, fmt: str) -> dict[str, Any]:
    if fmt == "chatml":
        return {"messages": ex.messages, "meta": ex.meta}
    if fmt == "openai":
        return {"messages": ex.messages}
    if fmt == "sharegpt":
        return {"conversations": [{"from": SHAREGPT_ROLES[m["role"]], "value": m["content"]} for m in ex.messages]}
    raise LabError(f"unknown SFT format '{fmt}' (known: {', '.join(SFT_FORMATS)})")


def kto_row(ex: Example) -> dict[str, Any]:
    """Desirable when the conversation succeeded, undesirable otherwise; a lie or a parse failure never desirable."""
    return {"prompt": ex.prompt, "completion": [ex.completion], "label": ex.success and ex.kind == "good"}


def dpo_pairs(examples: Iterable[Example]) -> list[tuple[Example, Example, float, float]]:
    """(chosen, rejected, chosen rate, rejected rate): different moves from the same state, different success rates.

    A state is the scenario, personality, target seed, condition and identical dialogue so far (and belief); each
    distinct move set played there gets its success rate over the conversations that played it, and every two
    move sets with different rates make a pair, the higher one chosen. Chosen moves are always `good` turns.
    """
    by_state: dict[tuple, dict[tuple[str, ...], list[Example]]] = defaultdict(lambda: defaultdict(list))
    for ex in examples:
        if ex.kind != "parse_failure":
            by_state[ex.state][ex.moves].append(ex)
    pairs = []
    for moves in by_state.values():
        if len(moves) < 2:
            continue
        scored = [(sum(e.success for e in exs) / len(exs), exs) for exs in moves.values()]
        for rate_a, exs_a in scored:
            chosen = next((e for e in exs_a if e.kind == "good"), None)
            if chosen is None:
                continue
            for rate_b, exs_b in scored:
                if rate_a > rate_b:
                    pairs.append((chosen, exs_b[0], rate_a, rate_b))
    return pairs


def dpo_row(chosen: Example, rejected: Example) -> dict[str, Any]:
    return {"prompt": chosen.prompt, "chosen": [chosen.completion], "rejected": [rejected.completion]}


def to_prompt_completion(row: Mapping[str, Any]) -> dict[str, list[Message]]:
    """A chat row (chatml/openai `messages`, or sharegpt `conversations`) as trl's conversational prompt/completion.

    Training on this form puts the loss on the completion (the persuader's reply) only. Rows already in
    prompt/completion form (kto) pass through without their label.
    """
    if "prompt" in row and "completion" in row:
        return {"prompt": list(row["prompt"]), "completion": list(row["completion"])}
    if "messages" in row:
        messages = list(row["messages"])
    elif "conversations" in row:
        back = {v: k for k, v in SHAREGPT_ROLES.items()}
        messages = [{"role": back.get(m["from"], m["from"]), "content": m["value"]} for m in row["conversations"]]
    else:
        raise LabError("a training row needs 'messages', 'conversations' or 'prompt'/'completion'")
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
    if last is None or last == 0:
        raise LabError("a training row needs an assistant message after the prompt")
    return {"prompt": messages[:last], "completion": [messages[last]]}


# ----- splits --------------------------------------------------------------------------------------
def load_test_scenarios(path: str | Path) -> tuple[set[str], set[str]]:
    """(ids, signatures) of a held-out set: a scenario file (YAML/JSON/JSONL) or a .txt list of ids."""
    path = Path(path)
    if path.suffix == ".txt":
        if not path.is_file():
            raise LabError(f"{path}: no such file")
        ids = {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
        return ids, set()
    scenarios = load_file(path)
    return {s.id for s in scenarios}, {signature(s) for s in scenarios}


class _Groups:
    """Union-find over scenario ids and signatures: a conversation joins its id's and signature's group."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def assign_splits(
    keys: Sequence[tuple[str, str]], val: float = 0.0, seed: int = 0,
    test_ids: set[str] | None = None, test_sigs: set[str] | None = None,
) -> list[str]:
    """The split of each conversation, given its (scenario id, signature): whole scenario groups move together."""
    if not 0.0 <= val < 1.0:
        raise LabError(f"--val must be a fraction from 0 to below 1, got {val}")
    test_ids, test_sigs = test_ids or set(), test_sigs or set()
    groups = _Groups()
    for sid, sig in keys:
        groups.union(f"id:{sid}", f"sig:{sig}")
    held = {groups.find(f"id:{sid}") for sid, sig in keys if sid in test_ids or sig in test_sigs}
    rest = sorted({groups.find(f"id:{sid}") for sid, _ in keys} - held)
    n_val = round(val * len(rest))
    if val > 0 and len(rest) >= 2:
        n_val = min(max(n_val, 1), len(rest) - 1)
    random.Random(seed).shuffle(rest)
    val_roots = set(rest[:n_val]) if val > 0 else set()
    out = []
    for sid, _ in keys:
        root = groups.find(f"id:{sid}")
        out.append("test" if root in held else "val" if root in val_roots else "train")
    return out


def check_disjoint(keys: Sequence[tuple[str, str]], splits: Sequence[str], test_ids: set[str], test_sigs: set[str]) -> None:
    """Raise if a scenario id or signature of val/test (or of the held-out set) is in the training split."""
    train_ids = {k[0] for k, s in zip(keys, splits, strict=True) if s == "train"}
    train_sigs = {k[1] for k, s in zip(keys, splits, strict=True) if s == "train"}
    other_ids = {k[0] for k, s in zip(keys, splits, strict=True) if s != "train"} | test_ids
    other_sigs = {k[1] for k, s in zip(keys, splits, strict=True) if s != "train"} | test_sigs
    leaked = (train_ids & other_ids) | (train_sigs & other_sigs)
    if leaked:
        raise LabError(f"split leak: held-out scenario(s) {', '.join(sorted(leaked)[:5])} in the training split")


def split_path(output: str | Path, split: str) -> Path:
    """training_data.jsonl -> training_data.val.jsonl / training_data.test.jsonl (train keeps the name)."""
    output = Path(output)
    if split == "train":
        return output
    suffix = output.suffix or ".jsonl"
    return output.with_name(f"{output.stem if output.suffix else output.name}.{split}{suffix}")


# ----- the whole run -------------------------------------------------------------------------------
@dataclass
class PrepareOptions:
    input: str
    output: str
    format: str = "chatml"
    val: float = 0.0
    seed: int = 0
    test_scenarios: str | None = None
    max_tokens: int | None = None
    skip_bad: bool = False
    model: str | None = None  # tokenizer of the model to be trained; None = embedded SmolLM2
    self_belief: bool = False
    only_successful: bool = False
    epochs: int | None = None  # OpenAI epochs for the cost; None = what n_epochs "auto" picks
    price_model: str | None = None


@dataclass
class Prepared:
    files: dict[str, Path]
    rows: dict[str, int]
    summary: dict[str, Any]


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


Progress = Callable[[int, int, str], None]  # (done, total, what is being done)


def prepare(opts: PrepareOptions, on_progress: Progress | None = None) -> Prepared:
    """Read, split, format, count and write; returns the files and the summary (nothing printed here).

    `on_progress` hears one step per conversation formatted, then one for the token count and one for the
    files written, so a UI can show a real bar (the TUI's Data pane)."""
    from engine.tokens import count_chats
    from engine.trajectories import read_trajectories

    if opts.format not in FORMATS:
        raise LabError(f"unknown format '{opts.format}' (known: {', '.join(FORMATS)})")
    if Path(opts.output).resolve() == Path(opts.input).resolve():
        raise LabError(f"--output {opts.output} would overwrite the input file")
    if opts.max_tokens is not None and opts.max_tokens <= 0:
        raise LabError(f"--max-tokens must be positive, got {opts.max_tokens}")
    test_ids, test_sigs = load_test_scenarios(opts.test_scenarios) if opts.test_scenarios else (set(), set())

    reader = read_trajectories(opts.input, skip_bad=opts.skip_bad)
    cache = ScenarioCache()
    convs = list(reader)
    keys = [(scenario.id, sig) for scenario, sig in (cache.get(t["scenario"]) for t in convs)]
    splits = assign_splits(keys, opts.val, opts.seed, test_ids, test_sigs)
    check_disjoint(keys, splits, test_ids, test_sigs)

    report = on_progress or (lambda done, total, what: None)
    total = len(convs) + 2
    built = {s: _Split() for s in SPLITS}
    for i, (traj, split) in enumerate(zip(convs, splits, strict=True)):
        built[split].conversations += 1
        built[split].successes += bool(traj["outcome"]["success"])
        built[split].examples += turn_examples(traj, cache, opts.self_belief)
        report(i + 1, total, "conversations formatted")
    skipped: dict[str, int] = defaultdict(int)
    for part in built.values():
        _fill_rows(part, opts, skipped)

    # token counts: one batch for all splits, so the tokenizer is loaded and called once
    counts = iter(count_chats([c for s in SPLITS for c in built[s].chats], opts.model))
    for part in built.values():
        part.tokens = [next(counts) for _ in part.chats]
        if opts.format == "dpo":  # a pair is trained as two sequences: report it as their sum
            part.tokens = [a + b for a, b in zip(part.tokens[::2], part.tokens[1::2], strict=True)]
            part.where = part.where[::2]
    report(total - 1, total, "tokens counted")

    wanted = {"train"} | ({"val"} if opts.val > 0 else set()) | ({"test"} if opts.test_scenarios else set())
    files = {s: _write(split_path(opts.output, s), built[s].rows) for s in SPLITS if s in wanted or built[s].rows}
    summary = _summary(opts, built, files, skipped, reader.report.bad)
    report(total, total, "written")
    return Prepared(files, {s: len(built[s].rows) for s in files}, summary)


@dataclass
class _Split:
    """One split while it is being built: its conversations, examples, output rows and their token counts."""

    conversations: int = 0
    successes: int = 0
    examples: list[Example] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    chats: list[list[Message]] = field(default_factory=list)  # what is tokenized, one or two per row
    where: list[tuple[str, int]] = field(default_factory=list)  # (conversation, turn) per chat
    tokens: list[int] = field(default_factory=list)  # per row
    dpo_states: int = 0


def _fill_rows(part: _Split, opts: PrepareOptions, skipped: dict[str, int]) -> None:
    """The split's output rows in `opts.format`, counting every turn left out and why."""
    if opts.format == "dpo":
        pairs = dpo_pairs(part.examples)
        part.dpo_states = len({p[0].state for p in pairs})
        for chosen, rejected, _, _ in pairs:
            part.rows.append(dpo_row(chosen, rejected))
            part.chats += [chosen.messages, [*chosen.prompt, rejected.completion]]
            part.where += [(chosen.conversation, chosen.turn)] * 2
        return
    for ex in part.examples:
        if ex.kind != "good" and opts.format in SFT_FORMATS:
            skipped[f"{ex.kind} (not an SFT target)"] += 1
        elif ex.kind == "parse_failure" and not ex.completion["content"]:
            skipped["parse_failure without raw text"] += 1
        elif opts.only_successful and not ex.success:
            skipped["turn of a failed conversation (--only-successful)"] += 1
        else:
            part.rows.append(sft_row(ex, opts.format) if opts.format in SFT_FORMATS else kto_row(ex))
            part.chats.append(ex.messages)
            part.where.append((ex.conversation, ex.turn))


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    write_json_lines(path, rows)
    return path


def _summary(
    opts: PrepareOptions, built: dict[str, _Split], files: dict[str, Path], skipped: dict[str, int], bad: list
) -> dict[str, Any]:
    from engine import pricing
    from engine.openai_format import MIN_EXAMPLES

    located = [(n, s, conv, turn) for s in SPLITS for n, (conv, turn) in zip(built[s].tokens, built[s].where, strict=True)]
    price_model = opts.price_model or pricing.DEFAULT_MODEL
    limit = pricing.price(price_model).example_token_limit
    train = built["train"]
    epochs = opts.epochs or pricing.auto_epochs(len(train.rows))
    billed = sum(min(n, limit) for n in train.tokens)  # the API truncates longer examples
    splits = {}
    for s, part in built.items():
        if not part.conversations and s not in files:
            continue
        splits[s] = {
            "file": str(files[s]) if s in files else None,
            "conversations": part.conversations,
            "successes": part.successes,
            "success_ratio": part.successes / part.conversations if part.conversations else 0.0,
            "turns": len(part.examples),
            "examples": len(part.rows),
            "tokens": sum(part.tokens),
            "max_example_tokens": max(part.tokens, default=0),
            **({"dpo_states": part.dpo_states} if opts.format == "dpo" else {}),
            **({"desirable": sum(r["label"] for r in part.rows)} if opts.format == "kto" else {}),
        }
    warnings = []
    if opts.val > 0 and not built["val"].conversations:
        warnings.append("--val drew no scenario: fewer than 2 scenario groups outside the test set")
    for s in files if opts.format == "openai" else ():
        if len(built[s].rows) < MIN_EXAMPLES:
            warnings.append(f"{files[s]} has {len(built[s].rows)} examples: the fine-tuning API needs at least {MIN_EXAMPLES}")
        too_long = sum(n > limit for n in built[s].tokens)
        if too_long:
            warnings.append(f"{files[s]}: {too_long} examples over the {limit:,}-token limit of {price_model}")
    return {
        "format": opts.format,
        "source": str(Path(opts.input).resolve()),
        "tokenizer": opts.model or "embedded (SmolLM2-135M-Instruct)",
        "seed": opts.seed,
        "val": opts.val,
        "test_scenarios": opts.test_scenarios,
        "splits": splits,
        "skipped": dict(skipped),
        "bad_lines": [{"line": ln, "reason": why} for ln, why in bad],
        "longest": [{"tokens": n, "split": s, "conversation": c, "turn": t} for n, s, c, t in sorted(located, reverse=True)[:5]],
        "max_tokens": opts.max_tokens,
        "over_max_tokens": [
            {"split": s, "conversation": c, "turn": t, "tokens": n}
            for n, s, c, t in located
            if opts.max_tokens and n > opts.max_tokens
        ],
        "openai_cost": {
            "model": price_model,
            "usd_per_million": pricing.price(price_model).usd_per_million,
            "epochs": epochs,
            "epochs_rule": "given" if opts.epochs else f"n_epochs auto for {len(train.rows)} examples",
            "training_tokens": billed,
            "usd": pricing.training_cost(billed, epochs, price_model),
            "prices_as_of": pricing.PRICES_AS_OF,
            "applies": opts.format in SFT_FORMATS,
        },
        **({"warnings": warnings} if warnings else {}),
    }


def record_dataset(store, prepared: Prepared, fmt: str) -> list[str]:
    """One `datasets` row per file written (path, format, counts, sha256, source, split, summary_json)."""
    from engine.store import now

    ids = []
    with store.transaction():
        for split, path in prepared.files.items():
            digest = sha256_file(path)
            stats = prepared.summary["splits"].get(split, {})
            row_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{path.resolve()}#{digest}").hex[:12]
            store.db["datasets"].insert(
                {
                    "id": row_id, "path": str(path.resolve()), "format": fmt, "source": prepared.summary["source"],
                    "split": split, "n_conversations": stats.get("conversations", 0),
                    "n_examples": stats.get("examples", 0), "n_tokens": stats.get("tokens", 0), "sha256": digest,
                    "summary_json": json.dumps(prepared.summary), "created_at": now(),
                },
                replace=True,
            )
            ids.append(row_id)
    return ids


__all__ = [
    "FORMATS",
    "SPLITS",
    "Example",
    "PrepareOptions",
    "Prepared",
    "ScenarioCache",
    "assign_splits",
    "check_disjoint",
    "dpo_pairs",
    "dpo_row",
    "kto_row",
    "load_test_scenarios",
    "prepare",
    "record_dataset",
    "sft_row",
    "split_path",
    "to_prompt_completion",
    "turn_examples",
]
