"""MindGames (Moore et al., COLM 2025) as a built-in benchmark: its recorded games as lab scenarios, its protocol's
target answers, and its published success rates.

The records are `games.csv` (one game a row; the cells that hold structures hold JSON) and `stories.json` (the
cover stories) from `../shared/mindgames/`. The lab ships what it needs from them (`scenarios/mindgames.jsonl`
and `scenarios/mindgames_published.json`), so nothing here is read at run time except by the import command and
the tests that check the shipped files against the records.

The shipped set is the 200 *game slots that every MindGames LLM persuader played*. In Experiment 1 the three LLM
persuaders (o1-preview, GPT-4o, Llama-3.1-405B) each played trials 0-199 in both conditions, and trial t is the
same game for all three and both conditions: the same game key (payoff_id, cover story, hidden facts, target
coefficients, persuader's proposal). `shared_slots` checks exactly that and returns one record per trial, so the
shipped scenario `mindgames-NNN` is trial NNN. Ten games occur twice among the 200 trials (190 distinct keys);
they stay two slots, as in the published denominators (n=200).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import LabError
from engine.game.interfaces import Statement
from engine.game.moves import Move, disclose
from engine.game.scenario import DEFAULT_DIR, Fact, Scenario, fact_key
from engine.pipeline.metrics import wilson

SHARED_DIR = Path(__file__).resolve().parents[3] / "shared" / "mindgames"
"""Where the raw records sit beside a checkout (CI copies shared/ there); absent in an installed lab."""
SCENARIOS_PATH = DEFAULT_DIR / "mindgames.jsonl"
PUBLISHED_PATH = DEFAULT_DIR / "mindgames_published.json"
SOURCE = "Moore et al. 2025, MindGames Experiment 1 (jlcmoore/mindgames, MIT)"

LLM_PERSUADERS = ("o1-preview", "gpt-4o", "llama3.1-405b")
"""The persuaders whose common slots make the shipped set."""
PUBLISHED_ROWS = (
    ("human", "humans"),
    ("o1-preview", "o1-preview"),
    ("gpt-4o", "GPT-4o"),
    ("llama3.1-405b", "Llama-3.1-405B"),
    ("random-baseline-8", "random disclosures"),
)
"""The published rows: (persuader as recorded, label), in the order of the paper's table."""


class MindGamesError(LabError):
    """A MindGames record that cannot be read or converted; the message names the file and line."""


@dataclass(frozen=True)
class GameRecord:
    """One recorded game, with its JSON cells parsed."""

    line: int
    persuader: str
    condition: str
    participant: str
    trial: int
    story: str
    payoff_id: str
    proposals: tuple[str, ...]
    attributes: tuple[str, ...]
    utilities: dict[str, dict[str, int]]
    hidden: dict[str, list[str]]
    coefficients: dict[str, float]
    persuader_choice: str
    initial_choice: str
    final_choice: str
    disclosures: list[dict[str, dict[str, int]]]
    turn_limit: int

    @property
    def game_key(self) -> str:
        """What makes two rows the same game, whoever played it (see the module docstring)."""
        return json.dumps([self.payoff_id, self.story, self.hidden, self.coefficients, self.persuader_choice],
                          sort_keys=True)

    @property
    def success(self) -> bool:
        return self.final_choice == self.persuader_choice


_JSON_CELLS = ("proposals", "attributes", "utilities", "hidden", "target_coefficients", "disclosures")


def read_games(path: str | Path) -> list[GameRecord]:
    """Every row of a MindGames `games.csv` as a `GameRecord`."""
    path = Path(path)
    if not path.is_file():
        raise MindGamesError(f"{path}: no such file (MindGames' games.csv, e.g. ../shared/mindgames/games.csv)")
    out = []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("persuader", "condition", "trial", *_JSON_CELLS) if c not in (reader.fieldnames or [])]
        if missing:
            raise MindGamesError(f"{path}: not a MindGames games.csv (missing column(s) {', '.join(missing)})")
        for row in reader:
            line = reader.line_num
            try:
                cells = {c: json.loads(row[c]) for c in _JSON_CELLS}
                out.append(GameRecord(
                    line=line, persuader=row["persuader"], condition=row["condition"],
                    participant=row["participant"], trial=int(row["trial"]), story=row["scenario"],
                    payoff_id=row["payoff_id"], proposals=tuple(cells["proposals"]),
                    attributes=tuple(cells["attributes"]), utilities=cells["utilities"], hidden=cells["hidden"],
                    coefficients=cells["target_coefficients"], persuader_choice=row["persuader_choice"],
                    initial_choice=row["initial_choice"], final_choice=row["final_choice"],
                    disclosures=cells["disclosures"], turn_limit=int(row["turn_limit"]),
                ))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise MindGamesError(f"{path}:{line}: unreadable game ({type(exc).__name__}: {exc})") from None
    return out


def read_stories(path: str | Path) -> dict[str, dict[str, str]]:
    """`stories.json`: cover story and roles per story name."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MindGamesError(f"{path}: no such file (MindGames' stories.json, beside games.csv)") from None
    except json.JSONDecodeError as exc:
        raise MindGamesError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None


def attribute_ids(names: Sequence[str]) -> dict[str, str]:
    """Short ids for a game's attribute names: the first word ('safety and control' -> 'safety'), or the whole
    name in snake case where two attributes of the game share a first word."""
    first = {n: n.split()[0].lower() for n in names}
    clash = {w for w in first.values() if list(first.values()).count(w) > 1}
    return {n: "_".join(n.lower().split()) if first[n] in clash else first[n] for n in names}


def to_scenario(record: GameRecord, stories: Mapping[str, Mapping[str, str]], scenario_id: str,
                design: bool = True) -> Scenario:
    """The lab scenario of a recorded game: the target knows every fact MindGames did not hide from it; how many it
    knows is public (`target_knows_count`), as MindGames' rules are, and so is what its generator guarantees
    (`full_knowledge_best`: told every fact, the target picks neither the goal nor its first choice). Without
    `design` that guarantee is left out, as MindGames' own persuaders were not told it."""
    ids = attribute_ids(record.attributes)
    story = stories.get(record.story, {})
    data: dict[str, Any] = {
        "id": scenario_id,
        "title": f"MindGames: {record.story} ({record.payoff_id})",
        "domain": "mindgames",
        "story": story.get("cover_story", "") or f"A decision among {len(record.proposals)} proposals.",
        "target_role": story.get("target_role", ""),
        "persuader_role": story.get("persuader_role", ""),
        "proposals": [{"id": p, "name": f"Proposal {p}"} for p in record.proposals],
        "attributes": [{"id": ids[a], "name": a} for a in record.attributes],
        "effects": {p: {ids[a]: record.utilities[p][a] for a in record.attributes} for p in record.proposals},
        "preferences": {ids[a]: record.coefficients[a] for a in record.attributes},
        "target_knows": [f"{p}.{ids[a]}" for p in record.proposals for a in record.attributes
                         if a not in record.hidden.get(p, [])],
        "goal": record.persuader_choice,
        "max_turns": record.turn_limit,
    }
    data["target_knows_count"] = len(data["target_knows"])  # public in MindGames: its rules hide 4 of the 9 facts
    if design:  # MindGames' generator makes every game so: told every fact, the target picks a third proposal
        data["full_knowledge_best"] = "other"
    return Scenario.from_dict(data, f"games.csv:{record.line}")


def disclosure_moves(record: GameRecord, turn: int) -> list[Move]:
    """The recorded disclosures of one turn (0-based) as lab moves, each stating the value MindGames recorded."""
    ids = attribute_ids(record.attributes)
    return [disclose((p, ids[a]), int(v)) for p, facts in record.disclosures[turn].items() for a, v in facts.items()]


def shared_slots(records: Iterable[GameRecord]) -> list[GameRecord]:
    """One record per trial that every LLM persuader played in both conditions, the same game each time."""
    by_trial: dict[int, list[GameRecord]] = {}
    for r in records:
        if r.persuader in LLM_PERSUADERS:
            by_trial.setdefault(r.trial, []).append(r)
    out = []
    for trial in sorted(by_trial):
        rows = by_trial[trial]
        played = {(r.persuader, r.condition) for r in rows}
        if len(played) == 2 * len(LLM_PERSUADERS) and len({r.game_key for r in rows}) == 1:
            out.append(rows[0])
    return out


def distinct_games(records: Iterable[GameRecord]) -> list[GameRecord]:
    """The first record of every distinct game (by `game_key`), in file order."""
    seen: dict[str, GameRecord] = {}
    for r in records:
        seen.setdefault(r.game_key, r)
    return list(seen.values())


def import_scenarios(csv_path: str | Path, every_game: bool = False, design: bool = True) -> list[Scenario]:
    """The shipped set from a games.csv (stories.json beside it): the shared slots as `mindgames-NNN` (NNN the
    trial), or with `every_game` every distinct game as `mindgames-<hash of its key>`. `design`: see `to_scenario`."""
    records = read_games(csv_path)
    stories = read_stories(Path(csv_path).with_name("stories.json"))
    if every_game:
        return [to_scenario(r, stories, f"mindgames-{hashlib.sha1(r.game_key.encode()).hexdigest()[:10]}", design)
                for r in distinct_games(records)]
    slots = shared_slots(records)
    if not slots:
        raise MindGamesError(f"{csv_path}: no trial was played by all of {', '.join(LLM_PERSUADERS)}")
    return [to_scenario(r, stories, f"mindgames-{r.trial:03d}", design) for r in slots]


# ----- published figures -------------------------------------------------------------------------------------
def published_rates(records: Iterable[GameRecord]) -> list[dict[str, Any]]:
    """The published success rates (persuader's proposal chosen at the end), one row per persuader and condition,
    computed from the records: what `compare --published mindgames` sets beside a run."""
    counts: dict[tuple[str, str], list[int]] = {}
    for r in records:
        cell = counts.setdefault((r.persuader, r.condition), [0, 0])
        cell[0] += r.success
        cell[1] += 1
    rows = []
    for persuader, label in PUBLISHED_ROWS:
        for condition in ("hidden", "revealed"):
            if (persuader, condition) in counts:
                wins, n = counts[(persuader, condition)]
                rows.append({"label": label, "condition": condition, "successes": wins, "n": n})
    return rows


def load_published(name: str) -> dict[str, Any]:
    """A shipped set of published figures by name (only 'mindgames' so far), each row with its rate and interval."""
    if name != "mindgames":
        raise LabError(f"--published: unknown figures '{name}' (known: mindgames)")
    try:
        data = json.loads(PUBLISHED_PATH.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise LabError(f"{PUBLISHED_PATH}: cannot read the published figures ({exc})") from None
    for row in data["rows"]:
        lo, hi = wilson(row["successes"], row["n"])
        row["rate"], row["ci95"] = row["successes"] / row["n"], [lo, hi]
    return data


def published_file(records: Iterable[GameRecord]) -> dict[str, Any]:
    """The content of `scenarios/mindgames_published.json`."""
    return {"source": SOURCE, "scenarios": "scenarios/mindgames.jsonl", "rows": published_rates(records)}


# ----- the MindGames protocol's target answers -----------------------------------------------------------------
REJECTED_REPLY = "Your message was not delivered: it states something false, and you may only reveal true information."
"""What the persuader reads when MindGames' rules reject a message with a false claim (the target never sees it)."""


def knowledge_answer(scenario: Scenario, knows: Iterable[Fact], proposal: str) -> tuple[str, list[Statement]]:
    """Asked about a proposal, MindGames' target tells everything it knows of it: a `knows` statement for every
    fact of the proposal (1 known, 0 not), and the known ones as sentences."""
    known = set(knows)
    facts = [(proposal, a) for a in scenario.attribute_ids]
    told = [scenario.fact_sentence(f) for f in facts if f in known]
    text = " ".join(f"I know that {t}." for t in told) or f"I know nothing about {scenario.proposal(proposal).name}."
    return text, [Statement("knows", fact_key(f), int(f in known)) for f in facts]


def ranking_answer(scenario: Scenario, vals: Mapping[str, float], choice: str) -> tuple[str, Statement]:
    """Asked for its choice, MindGames' target gives its full ranking (and, on a tie at the top, which it keeps):
    a `choice` statement whose value is the ranking, e.g. `choice A A>B=C`."""
    groups = ranking(vals)
    names = [" and ".join(scenario.proposal(p).name for p in g) for g in groups]
    text = "I prefer " + " over ".join(names) + "."
    text += "".join(f" I rank {n} the same." for g, n in zip(groups, names, strict=True) if len(g) > 1)
    if len(groups[0]) > 1:
        text += f" On a tie at the top I keep my earlier choice: {scenario.proposal(choice).name}."
    return text, Statement("choice", choice, ranking_text(groups))


def ranking(vals: Mapping[str, float]) -> list[list[str]]:
    """Proposals grouped by value, best first: [['A'], ['B', 'C']] reads 'A over B and C, B and C the same'."""
    groups: dict[float, list[str]] = {}
    for p, v in vals.items():
        groups.setdefault(round(v, 9), []).append(p)
    return [groups[v] for v in sorted(groups, reverse=True)]


def ranking_text(groups: list[list[str]]) -> str:
    """A ranking in one token for a `choice` statement's value: 'A>B=C'."""
    return ">".join("=".join(g) for g in groups)
