"""Trajectories to training files (DESIGN.md 2): SFT, ShareGPT, OpenAI, KTO and DPO, split by scenario.

Every example is built by `engine.players.prompts` alone (system = the persuader's side of the scenario + the turn's
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
(`engine.game.generator.signature`) are in one group; `--test-scenarios` sends every group touching a held-out id or
signature to the test file, and `--val` draws a seeded fraction of the remaining groups. `check_disjoint`
verifies the result before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from engine.errors import LabError
from engine.files import atomic_write
from engine.game.generator import signature
from engine.game.interfaces import persuader_side, revealed_state
from engine.game.scenario import Scenario, load_file
from engine.pipeline.metrics import outcome_counts
from engine.players.prompts import assistant_text, history_from_turns, persuader_messages
from engine.players.reply_schema import reply_sections

if TYPE_CHECKING:  # records arrive already built: the Data pane imports this module without pydantic
    from engine.game.record import Episode

FORMATS = ("chatml", "sharegpt", "openai", "kto", "dpo")
NO_DPO_PAIRS = (
    "{input}: no DPO pair: no two conversations play different moves from the same state with different outcomes; "
    "nothing was written. Generate with repeats (ptom-lab generate --repeats 3) so that states recur"
)
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
    """One scenario object and its signature per distinct scenario, computed once however many lines share it.

    Bounded (least recently used out): conversations of one scenario are usually close together in a file, and
    20,000 generated conversations on 20,000 scenarios must not keep them all."""

    def __init__(self, size: int = 1024) -> None:
        self._by_key: OrderedDict[str, tuple[Scenario, str]] = OrderedDict()
        self.size = size
        self._last: tuple[Scenario, tuple[Scenario, str]] | None = None  # the object asked for last, and its answer

    def get(self, scenario: Scenario) -> tuple[Scenario, str]:
        if self._last is None or self._last[0] is not scenario:  # the same object again needs no JSON dump
            self._last = (scenario, self._get(scenario))
        return self._last[1]

    def _get(self, scenario: Scenario) -> tuple[Scenario, str]:
        key = json.dumps(scenario.to_dict(), sort_keys=True)
        if key in self._by_key:
            self._by_key.move_to_end(key)
        else:
            self._by_key[key] = (scenario, signature(scenario))
            if len(self._by_key) > self.size:
                self._by_key.popitem(last=False)
        return self._by_key[key]


# ----- examples ------------------------------------------------------------------------------------
def turn_examples(
    traj: Episode, cache: ScenarioCache | None = None, self_belief: bool = False, reply: str = "full"
) -> list[Example]:
    """One example per persuader turn of a recorded conversation (see the module docstring for `kind`).

    `reply` is the reply format (`full`, `compact` or `moves`) the model plays with (`?reply=`, or the adapter's
    record)."""
    scenario, sig = (cache or ScenarioCache()).get(traj.scenario)
    side = persuader_side(scenario)
    condition = traj.condition
    revealed = revealed_state(scenario, condition)
    success = bool(traj.outcome and traj.outcome.success)
    turns = traj.turns
    out = []
    for i, turn in enumerate(turns):
        belief = turn.belief.model_dump(exclude_none=True) if turn.belief else None
        prompt = persuader_messages(side, i + 1, history_from_turns(turns[:i]), belief, revealed, self_belief, reply)
        if not turn.parse_ok:
            kind, text = "parse_failure", turn.raw.strip()
        else:
            kind = "refused_lie" if turn.refused else "good"
            text = assistant_text(turn, self_belief, reply)
        out.append(
            Example(
                conversation=traj.id,
                scenario_id=scenario.id,
                turn=i + 1,
                success=success,
                kind=kind,
                prompt=prompt,
                completion={"role": "assistant", "content": text},
                state=(sig, traj.target.personality, traj.target.seed, condition, prompt[0]["content"], prompt[1]["content"]),
                moves=tuple(m.text() for m in turn.moves),
                meta={
                    "conversation": traj.id, "scenario": scenario.id, "turn": i + 1, "success": success,
                    "condition": condition, "persuader": traj.persuader.name,
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
    reply_format: str = "full"  # full | compact | moves: kept in the summary, so play can use the same `?reply=`
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


BATCH = 1000
"""Conversations formatted, token-counted and written together: memory holds one batch, not the file, and the
tokenizer is still called with thousands of texts at once."""


def prepare(opts: PrepareOptions, on_progress: Progress | None = None) -> Prepared:
    """Read, split, format, count and write; returns the files and the summary (nothing printed here).

    Two passes over the input keep memory bounded by a batch of conversations, not by the file (20,000
    conversations held at once peaked at 2.5 GB): the first reads each conversation's scenario, since the split by
    scenario group needs every scenario before any conversation is assigned; the second formats the conversations
    a batch at a time and writes each row to its split's file. DPO pairs compare every state of a split, so that
    format keeps its examples until the end. Files are written atomically: a failure leaves none half-written.
    `on_progress` hears one step per conversation formatted, then one for the token count and one for the
    files written, so a UI can show a real bar (the TUI's Data pane)."""
    from engine.pipeline.trajectories import read_trajectories

    if opts.format not in FORMATS:
        raise LabError(f"unknown format '{opts.format}' (known: {', '.join(FORMATS)})")
    reply_sections(opts.reply_format)  # an unknown reply format is named before any file is read
    if Path(opts.output).resolve() == Path(opts.input).resolve():
        raise LabError(f"--output {opts.output} would overwrite the input file")
    if opts.max_tokens is not None and opts.max_tokens <= 0:
        raise LabError(f"--max-tokens must be positive, got {opts.max_tokens}")
    test_ids, test_sigs = load_test_scenarios(opts.test_scenarios) if opts.test_scenarios else (set(), set())

    cache = ScenarioCache()
    keys, lines = _scenario_keys(opts.input, cache)
    split_of = dict(zip(keys, assign_splits(keys, opts.val, opts.seed, test_ids, test_sigs), strict=True))
    check_disjoint(keys, list(split_of.values()), test_ids, test_sigs)

    report = on_progress or (lambda done, total, what: None)
    total = lines + 2
    built = {s: _Split() for s in SPLITS}
    skipped: dict[str, int] = defaultdict(int)
    wanted = {"train"} | ({"val"} if opts.val > 0 else set()) | ({"test"} if opts.test_scenarios else set())
    reader = read_trajectories(opts.input, skip_bad=opts.skip_bad)
    with ExitStack() as stack:
        out = _Outputs(opts, built, stack)
        for split in SPLITS:
            if split in wanted:
                out.file(split)  # written even when empty, as the user asked for it
        pending: list[tuple[str, dict[str, Any], list[Message], tuple[str, int]]] = []
        for done, traj in enumerate(reader, 1):
            scenario, sig = cache.get(traj.scenario)
            split = split_of.get((scenario.id, sig))
            if split is None:  # pass one saw no such scenario
                raise LabError(f"{opts.input} changed while it was being read: run prepare again")
            part = built[split]
            part.outcomes.append(bool(traj.outcome and traj.outcome.success))
            examples = turn_examples(traj, cache, opts.self_belief, opts.reply_format)
            part.turns += len(examples)
            if opts.format == "dpo":
                part.examples += examples
            else:
                pending += [(split, *row) for row in _sft_rows(examples, opts, skipped)]
            if done % BATCH == 0:
                out.write(pending)
            report(done, total, "conversations formatted")
        out.write(pending)
        if opts.format == "dpo":
            _write_dpo(out, opts)
        report(total - 1, total, "tokens counted")
        files = {s: split_path(opts.output, s) for s in SPLITS if s in out.files}
    summary = _summary(opts, built, files, skipped, reader.report.bad)
    report(total, total, "written")
    return Prepared(files, {s: built[s].rows for s in files}, summary)


def _scenario_keys(path: str, cache: ScenarioCache) -> tuple[list[tuple[str, str]], int]:
    """Pass one: every distinct (scenario id, signature) in the file, and how many lines it has.

    Only each line's scenario is read, through the record's own scenario field (a full scenario, or an id in
    the library); the turns are validated once, in pass two, which also names every bad line. The split is a
    function of the scenario group, so pass two looks each conversation's split up by its scenario."""
    from pydantic import TypeAdapter, ValidationError

    from engine.game.record import ScenarioField
    from engine.game.scenario import ScenarioLibrary
    from engine.jsonl import json_lines

    field_ = TypeAdapter(ScenarioField)
    context = {"library": ScenarioLibrary(), "cache": {}}
    keys: dict[tuple[str, str], None] = {}  # insertion-ordered set
    lines = 0
    for _, data in json_lines(path, on_bad=lambda line, reason: None):
        lines += 1
        if not isinstance(data, dict):
            continue
        value = data["scenario"] if data.get("scenario") is not None else data.get("scenario_id")
        try:
            scenario, sig = cache.get(field_.validate_python(value, context=context))
        except ValidationError:
            continue
        keys[(scenario.id, sig)] = None
    return list(keys), lines


@dataclass
class _Split:
    """One split while it is being built: counts, and per row its token count and (conversation, turn)."""

    outcomes: list[bool] = field(default_factory=list)  # each conversation's success
    turns: int = 0
    rows: int = 0
    desirable: int = 0  # kto rows labelled desirable
    tokens: list[int] = field(default_factory=list)  # per row (a DPO pair: its two sequences together)
    where: list[tuple[str, int]] = field(default_factory=list)  # (conversation, turn) per row
    examples: list[Example] = field(default_factory=list)  # DPO only: every state of the split is compared
    dpo_states: int = 0


class _Outputs:
    """The split files, each opened (atomically) at its first row, and the bookkeeping of every row written."""

    def __init__(self, opts: PrepareOptions, built: dict[str, _Split], stack: ExitStack) -> None:
        self.opts, self.built, self.stack = opts, built, stack
        self.files: dict[str, IO[str]] = {}
        self.words: dict[str, int] = {}  # tokens per distinct word, across batches (see `count_texts`)

    def file(self, split: str) -> IO[str]:
        if split not in self.files:
            self.files[split] = self.stack.enter_context(atomic_write(split_path(self.opts.output, split)))
        return self.files[split]

    def write(self, pending: list[tuple[str, dict[str, Any], list[Message], tuple[str, int]]], per_row: int = 1) -> None:
        """Count the tokens of the pending rows' chats in one call, write the rows, and empty `pending`.

        `per_row` chats make one row (a DPO pair is trained as two sequences: its tokens are their sum)."""
        from engine.pipeline.tokens import count_chats

        counts = count_chats([chat for *_, chat, _ in pending], self.opts.model, self.words)
        for i in range(0, len(pending), per_row):
            split, row, _, where = pending[i]
            part = self.built[split]
            self.file(split).write(json.dumps(row, ensure_ascii=False) + "\n")
            part.rows += 1
            part.tokens.append(sum(counts[i:i + per_row]))
            part.where.append(where)
            part.desirable += bool(row.get("label"))
        pending.clear()


def _sft_rows(
    examples: list[Example], opts: PrepareOptions, skipped: dict[str, int]
) -> Iterator[tuple[dict[str, Any], list[Message], tuple[str, int]]]:
    """(row, chat to count, (conversation, turn)) of each example kept in `opts.format`; every turn left out is
    counted in `skipped` with its reason."""
    for ex in examples:
        if ex.kind != "good" and opts.format in SFT_FORMATS:
            skipped[f"{ex.kind} (not an SFT target)"] += 1
        elif ex.kind == "parse_failure" and not ex.completion["content"]:
            skipped["parse_failure without raw text"] += 1
        elif opts.only_successful and not ex.success:
            skipped["turn of a failed conversation (--only-successful)"] += 1
        else:
            yield (sft_row(ex, opts.format) if opts.format in SFT_FORMATS else kto_row(ex)), ex.messages, (
                ex.conversation, ex.turn)


def _write_dpo(out: _Outputs, opts: PrepareOptions) -> None:
    """Each split's chosen/rejected pairs; none at all is an error (an empty file would train nothing)."""
    pairs = {split: dpo_pairs(part.examples) for split, part in out.built.items()}
    if not any(pairs.values()):
        raise LabError(NO_DPO_PAIRS.format(input=opts.input))
    for split, part in out.built.items():
        part.dpo_states = len({p[0].state for p in pairs[split]})
        pending = []
        for chosen, rejected, _, _ in pairs[split]:
            where = (chosen.conversation, chosen.turn)
            pending += [(split, dpo_row(chosen, rejected), chosen.messages, where),
                        (split, {}, [*chosen.prompt, rejected.completion], where)]
        out.write(pending, per_row=2)
        part.examples.clear()


def _summary(
    opts: PrepareOptions, built: dict[str, _Split], files: dict[str, Path], skipped: dict[str, int], bad: list
) -> dict[str, Any]:
    from engine.llm import pricing
    from engine.pipeline.openai_format import MIN_EXAMPLES

    located = [(n, s, conv, turn) for s in SPLITS for n, (conv, turn) in zip(built[s].tokens, built[s].where, strict=True)]
    price_model = opts.price_model or pricing.DEFAULT_MODEL
    limit = pricing.price(price_model).example_token_limit
    train = built["train"]
    epochs = opts.epochs or pricing.auto_epochs(train.rows)
    billed = sum(min(n, limit) for n in train.tokens)  # the API truncates longer examples
    splits = {}
    for s, part in built.items():
        if not part.outcomes and s not in files:
            continue
        outcome = outcome_counts(part.outcomes)
        splits[s] = {
            "file": str(files[s]) if s in files else None,
            "conversations": outcome["n"],
            "successes": outcome["successes"],
            "success_ratio": outcome["rate"] or 0.0,
            "turns": part.turns,
            "examples": part.rows,
            "tokens": sum(part.tokens),
            "max_example_tokens": max(part.tokens, default=0),
            **({"dpo_states": part.dpo_states} if opts.format == "dpo" else {}),
            **({"desirable": part.desirable} if opts.format == "kto" else {}),
        }
    warnings = []
    if opts.val > 0 and not built["val"].outcomes:
        warnings.append("--val drew no scenario: fewer than 2 scenario groups outside the test set")
    for s in files if opts.format == "openai" else ():
        if built[s].rows < MIN_EXAMPLES:
            warnings.append(f"{files[s]} has {built[s].rows} examples: the fine-tuning API needs at least {MIN_EXAMPLES}")
        too_long = sum(n > limit for n in built[s].tokens)
        if too_long:
            warnings.append(f"{files[s]}: {too_long} examples over the {limit:,}-token limit of {price_model}")
    return {
        "format": opts.format,
        "reply_format": opts.reply_format,
        "self_belief": opts.self_belief,
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
            "epochs_rule": "given" if opts.epochs else f"n_epochs auto for {train.rows} examples",
            "training_tokens": billed,
            "usd": pricing.training_cost(billed, epochs, price_model),
            "prices_as_of": pricing.PRICES_AS_OF,
            "applies": opts.format in SFT_FORMATS,
        },
        **({"warnings": warnings} if warnings else {}),
    }


def record_dataset(store, prepared: Prepared, fmt: str) -> list[str]:
    """One `datasets` row per file written (path, format, counts, sha256, source, split, summary_json)."""
    ids = []
    with store.transaction():
        for split, path in prepared.files.items():
            digest = sha256_file(path)
            stats = prepared.summary["splits"].get(split, {})
            row_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{path.resolve()}#{digest}").hex[:12]
            store.put_dataset({
                "id": row_id, "path": str(path.resolve()), "format": fmt, "source": prepared.summary["source"],
                "split": split, "n_conversations": stats.get("conversations", 0),
                "n_examples": stats.get("examples", 0), "n_tokens": stats.get("tokens", 0), "sha256": digest,
                "summary_json": json.dumps(prepared.summary),
            })
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
