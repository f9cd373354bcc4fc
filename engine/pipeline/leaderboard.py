"""Leaderboards: agents side by side on the same episodes, as Markdown, JSON and a PNG chart.

An entry is one agent under one condition (a run with `--condition both` gives two entries, so planner-hidden
and planner-revealed sit in the same table). Metrics come from `engine.pipeline.metrics`; pairwise rows are McNemar's
exact test on the episodes both agents finished.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from engine.errors import LabError
from engine.files import atomic_write, write_text
from engine.llm.specs import SETTINGS
from engine.pipeline.evaluation import run_episodes
from engine.pipeline.metrics import paired, summarize
from engine.players.spec import parse
from engine.store import Store

if TYPE_CHECKING:
    from engine.game.record import Episode


@dataclass
class Entry:
    label: str
    run: str
    agent: str
    condition: str
    episodes: list[Episode] = field(repr=False)
    summary: dict[str, Any] = field(init=False, repr=False)  # derived from the episodes, never passed in

    def __post_init__(self) -> None:
        self.summary = summarize(self.episodes)


def entries_for_runs(store: Store, names: list[str]) -> list[Entry]:
    """One entry per (stored run, condition)."""
    out: list[Entry] = []
    rows = []
    for name in names:
        row = store.find_eval_run(name)
        if not row:
            raise LabError(f"no evaluation run '{name}' in {store.path} (see `ptom-lab sessions` or run `evaluate`)")
        rows.append(row)
    for row, base in zip(rows, label_bases(rows), strict=True):
        episodes = run_episodes(store, row["id"])
        conditions = sorted({e.condition for e in episodes}) or ["hidden"]
        for cond in conditions:
            label = f"{base}-{cond}"
            out.append(Entry(label, row["name"], row["persuader"], cond, [e for e in episodes if e.condition == cond]))
    return out


def label_bases(runs: list[dict[str, Any]]) -> list[str]:
    """Each stored run's label before its condition: its persuader, short; its run name where two runs share one."""
    agents = [short_agent(r["persuader"] or r["name"]) for r in runs]
    return [agent if agents.count(agent) == 1 else row["name"] for row, agent in zip(runs, agents, strict=True)]


def stored_board(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The leaderboard of stored evaluation runs from the summary each saved when it ended (`results_json`, as
    `metrics.summarize` wrote it), ranked as `build` ranks: what the TUI polls every second, without reading every
    episode again. A run with no summary yet (running, interrupted) is left out; a `both` run has an entry per
    condition. No pairwise rows: those need the episodes (`build` over `entries_for_runs`)."""
    scored = [r for r in runs if r.get("results_json")]
    entries = []
    for row, base in zip(scored, label_bases(scored), strict=True):
        results = json.loads(row["results_json"])
        condition = json.loads(row.get("config_json") or "{}").get("condition", "hidden")
        for cond, summary in (results.get("by_condition") or {condition: results}).items():
            entries.append({"label": f"{base}-{cond}", "run": row["name"], "agent": row["persuader"],
                            "condition": cond, **summary})
    return {"entries": sorted(entries, key=rank_key), "pairwise": []}


def rank_key(summary: dict[str, Any]) -> tuple[float, float]:
    """Best first: by success rate, then by its interval's lower bound (an unscored entry ranks as 0)."""
    return -(summary["success"]["rate"] or 0), -summary["success"]["ci95"][0]


def short_agent(spec: str) -> str:
    """A persuader spec without its model's run settings (`local:models/x?temperature=0&dtype=bfloat16` reads
    `local:models/x`; `planner?noise=0.3` keeps its noise, which makes it another player): the full spec squeezed
    the terminal table and the chart. The Markdown and JSON keep it. A stored name that is no spec stays whole."""
    try:
        return str(parse(spec).without(*SETTINGS))
    except LabError:
        return spec


def build(entries: list[Entry], published: dict[str, Any] | None = None) -> dict[str, Any]:
    """The leaderboard as data: entries best first (by success rate, then lower bound), and every pair's test.

    `published` (`engine.game.mindgames.load_published`) rides along as figures from the literature: shown beside the
    entries, labelled as published, never ranked or paired with them (they are not the same episodes)."""
    ranked = sorted(entries, key=lambda e: rank_key(e.summary))
    rows = [{"label": e.label, "run": e.run, "agent": e.agent, "condition": e.condition, **e.summary} for e in ranked]
    pairs = []
    for a, b in combinations(ranked, 2):
        pairs.append({"a": a.label, "b": b.label, **paired(a.episodes, b.episodes)})
    board: dict[str, Any] = {"entries": rows, "pairwise": pairs}
    if published:
        board["published"] = published
    return board


def pct(x: float | None, digits: int = 0) -> str:
    """A rate as a percentage; '–' where the metric is undefined (None). Shared with `ptom-lab evaluate`."""
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def num(x: float | None, digits: int = 2) -> str:
    """A number with fixed decimals; '–' where the metric is undefined (None)."""
    return "–" if x is None else f"{x:.{digits}f}"


def success_text(s: dict[str, Any], digits: int = 0) -> str:
    """`metrics.success_rate` as 'rate (low–high)'."""
    return f"{pct(s['rate'], digits)} ({pct(s['ci95'][0], digits)}–{pct(s['ci95'][1], digits)})"


def table(board: dict[str, Any]):
    """A compact rich table for the terminal (the Markdown file has every column)."""
    from rich import box
    from rich.table import Table

    # no vertical rules and short headers, so 80 columns show every column and a long label folds, not "loca…"
    t = Table(title="Leaderboard", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in ("#", "agent", "n", "success (95% CI)", "turns", "align", "CF acc", "Brier", "moves", "lies", "err"):
        t.add_column(col, justify="left" if col == "agent" else "right", overflow="fold")
    for i, r in enumerate(board["entries"], 1):
        s, cf = r["success"], r["counterfactual"]
        t.add_row(
            str(i), r["label"], str(s["n"]), success_text(s),
            num(r["turns_to_success"]["mean"], 1), pct(r["preference_alignment"]["final"]),
            pct(cf["choice_accuracy"]), num(cf["brier"], 3), pct((r.get("moves") or {}).get("rate")),
            str(r["violations"]), str(r["errored"]),
        )
    if published := board.get("published"):
        t.add_section()
        for r in published["rows"]:
            t.add_row("pub", f"{r['label']}-{r['condition']}", str(r["n"]), success_text(r), *["–"] * 7)
    captions = [text for text in (unfinished_text(board), published_text(board)) if text]
    if captions:
        t.caption, t.caption_justify = "\n".join(captions), "left"
    return t


def published_text(board: dict[str, Any]) -> str:
    published = board.get("published")
    return f"pub: published figures ({published['source']}), not episodes of these runs" if published else ""


ROW_COLUMNS = ("rank", "label", "agent", "run", "condition", "n", "successes", "rate", "ci_low", "ci_high",
               "turns_mean", "alignment", "cf_accuracy", "brier", "moves_rate", "lies", "unparseable", "errored",
               "unfinished", "disclosures", "ruled_out", "tokens", "cost_usd")


def rows(board: dict[str, Any]) -> list[dict[str, Any]]:
    """The ranked entries as flat rows of raw numbers (None where undefined), for pipes and `compare --json`."""
    out = []
    for i, r in enumerate(board["entries"], 1):
        s, cf, usage = r["success"], r["counterfactual"], r["usage"]
        out.append({
            "rank": i, "label": r["label"], "agent": r["agent"], "run": r["run"], "condition": r["condition"],
            "n": s["n"], "successes": s.get("successes"), "rate": s["rate"], "ci_low": s["ci95"][0],
            "ci_high": s["ci95"][1], "turns_mean": r["turns_to_success"]["mean"],
            "alignment": r["preference_alignment"]["final"], "cf_accuracy": cf["choice_accuracy"],
            "brier": cf["brier"], "moves_rate": (r.get("moves") or {}).get("rate"), "lies": r["violations"],
            "unparseable": r["unparseable"], "errored": r["errored"], "unfinished": r.get("unfinished", 0),
            "disclosures": (r.get("disclosures") or {}).get("made"),
            "ruled_out": (r.get("disclosures") or {}).get("ruled_out"),
            "tokens": usage["input_tokens"] + usage["output_tokens"], "cost_usd": usage["cost_usd"],
        })
    for r in (board.get("published") or {}).get("rows", []):  # figures from the literature: unranked
        out.append(dict.fromkeys(ROW_COLUMNS) | {
            "label": f"{r['label']}-{r['condition']}", "agent": "published", "condition": r["condition"], "n": r["n"],
            "successes": r["successes"], "rate": r["rate"], "ci_low": r["ci95"][0], "ci_high": r["ci95"][1],
        })
    return out


def told_text(summary: dict[str, Any]) -> str:
    """Disclosures the target's stated preferences had ruled out, of all made (`metrics.disclosures`)."""
    told = summary.get("disclosures")
    return f"{told['ruled_out']} / {told['made']}" if told else "–"


def unfinished_text(board: dict[str, Any]) -> str:
    """Runs compared while still playing (or stopped): their unplayed episodes are in no rate, and not errors."""
    counts = [f"{r['label']} {r['unfinished']}" for r in board["entries"] if r.get("unfinished")]
    return "Unfinished episodes, not in the rates (resume the run): " + ", ".join(counts) if counts else ""


def markdown(board: dict[str, Any]) -> str:
    """Every column, the preference alignment turn by turn, and every pair's McNemar test."""
    lines = [
        "| # | Agent | Condition | n | Success (95% CI) | Turns to success (mean / median) | Pref. alignment (final) "
        "| CF choice acc. | CF Brier | Turns with moves | Lies | Disclosures ruled out / made | Unparseable | Errored "
        "| Tokens | Cost $ |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(board["entries"], 1):
        s, t, cf = r["success"], r["turns_to_success"], r["counterfactual"]
        tokens = r["usage"]["input_tokens"] + r["usage"]["output_tokens"]
        lines.append(
            f"| {i} | {r['label']} | {r['condition']} | {s['n']} | {success_text(s)} "
            f"| {num(t['mean'], 1)} / {num(t['median'], 1)} "
            f"| {pct(r['preference_alignment']['final'])} | {pct(cf['choice_accuracy'])} | {num(cf['brier'], 3)} "
            f"| {pct((r.get('moves') or {}).get('rate'))} | {r['violations']} | {told_text(r)} | {r['unparseable']} "
            f"| {r['errored']} "
            f"| {tokens} | {r['usage']['cost_usd']:.4f} |"
        )
    if waiting := unfinished_text(board):
        lines += ["", waiting]
    if published := board.get("published"):
        lines += ["", f"Published figures ({published['source']}; played on `{published['scenarios']}`), beside the "
                  "runs above, not ranked or paired with them", "",
                  "| Persuader | Condition | n | Success (95% CI) |", "|---|---|---|---|"]
        lines += [f"| {r['label']} | {r['condition']} | {r['n']} | {success_text(r)} |" for r in published["rows"]]
    lines += ["", "Runs (the persuader's full spec, options included):", ""]
    lines += [f"- {r['label']}: run `{r['run']}`, persuader `{r['agent']}`" for r in board["entries"]]
    turns = sorted({int(i) for r in board["entries"] for i in r["preference_alignment"]["by_turn"]})
    if turns:  # JSON keys are strings once the board has been written and read back
        lines += ["", "Preference alignment by turn (share of the target's preferences the persuader's belief had right)",
                  "", "| Agent | " + " | ".join(f"turn {i}" for i in turns) + " |", "|---|" + "---|" * len(turns)]
        for r in board["entries"]:
            by_turn = {int(k): v for k, v in r["preference_alignment"]["by_turn"].items()}
            lines.append(f"| {r['label']} | " + " | ".join(pct(by_turn.get(i)) for i in turns) + " |")
    if board["pairwise"]:
        lines += ["", "Paired comparison (McNemar's exact test on the episodes both finished)", "",
                  "| A | B | pairs | only A won | only B won | p-value |", "|---|---|---|---|---|---|"]
        for p in board["pairwise"]:
            lines.append(f"| {p['a']} | {p['b']} | {p['pairs']} | {p['only_a']} | {p['only_b']} | {p['p_value']:.3g} |")
    return "\n".join(lines) + "\n"


def chart(board: dict[str, Any], path: str | Path | BinaryIO) -> None:
    """Success rate per entry with its 95% Wilson interval, as a horizontal bar chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(reversed(board["entries"]))
    rates = [r["success"]["rate"] or 0.0 for r in rows]
    scored = [r["success"]["rate"] is not None for r in rows]  # no scored episode: no bar and no interval
    lo = [max(0.0, rate - r["success"]["ci95"][0]) if ok else 0.0 for rate, r, ok in zip(rates, rows, scored, strict=True)]
    hi = [max(0.0, r["success"]["ci95"][1] - rate) if ok else 0.0 for rate, r, ok in zip(rates, rows, scored, strict=True)]
    longest = max((len(r["label"]) for r in rows), default=10)  # long model specs must not squeeze the bars
    fig, ax = plt.subplots(figsize=(5 + 0.075 * longest, 0.5 * len(rows) + 1.2))
    ax.barh([r["label"] for r in rows], rates, xerr=[lo, hi], color="#4C72B0", capsize=3)
    for y, (rate, r, ok) in enumerate(zip(rates, rows, scored, strict=True)):  # figure and n, readable alone
        text = f"{100 * rate:.0f}% (n={r['success']['n']})" if ok else f"no scored episode ({r['errored']} errored)"
        inside = rate >= 0.3  # a short bar: the text goes right of its interval instead
        x = 0.01 if inside or not ok else r["success"]["ci95"][1] + 0.01
        ax.text(x, y, text, va="center", ha="left", color="white" if inside else "black", fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_xlabel("success rate (95% Wilson interval)")
    ax.set_title("PToM Lab leaderboard")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def write(board: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """leaderboard.md, leaderboard.json and leaderboard.png in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "leaderboard.md", "json": out / "leaderboard.json", "png": out / "leaderboard.png"}
    write_text(paths["markdown"], markdown(board))
    write_text(paths["json"], json.dumps(board, indent=2))
    with atomic_write(paths["png"], "wb") as fh:
        chart(board, fh)
    return paths
