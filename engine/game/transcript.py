"""A game as readable text: the one renderer behind `play`, `sessions show` and Markdown export.

It works on the trajectory dict (DESIGN.md 2), which both a live `Episode` and a stored session produce.
"""

from __future__ import annotations

from typing import Any


def header(traj: dict[str, Any]) -> list[str]:
    s = traj["scenario"]
    names = {p["id"]: p["name"] for p in s["proposals"]}
    target = traj.get("target") or {}
    return [
        f"# {s.get('title') or s['id']}  ({s['id']})",
        "",
        s.get("story", "").strip(),
        "",
        "- Proposals: " + "; ".join(f"{p['id']} = {p['name']}" for p in s["proposals"]),
        f"- Goal: {s['goal']} ({names.get(s['goal'], '?')}); condition: {traj.get('condition')}",
        f"- Persuader: {(traj.get('persuader') or {}).get('name')}; target: {target.get('kind')} "
        f"({target.get('personality')}, seed {target.get('seed')})",
        "",
    ]


def turn_lines(turn: dict[str, Any], details: bool = True) -> list[str]:
    lines = [f"**Turn {turn['index']}**", ""]
    if details and turn.get("reasoning"):
        lines.append(f"> _thinking:_ {turn['reasoning']}")
    if turn.get("moves"):
        lines.append(f"> _moves:_ {'; '.join(turn['moves'])}")
    if turn.get("refused"):
        from engine.game.record import Refusal  # pydantic only when there is a lie to show

        lines += [f"> _refused (not true):_ {Refusal.model_validate(r).text()}" for r in turn["refused"]]
    if turn.get("parse_ok") is False:
        lines.append(f"> _unparseable reply:_ {turn.get('parse_error', '')}")
    lines += [f"- **Persuader:** {turn['message']}", f"- **Target:** {turn['target_reply']}", ""]
    return lines


def outcome_lines(traj: dict[str, Any]) -> list[str]:
    o = traj.get("outcome")
    if not o:
        return ["_No outcome: the game did not finish._"]
    s = traj["scenario"]
    names = {p["id"]: p["name"] for p in s["proposals"]}
    verdict = "SUCCESS" if o["success"] else "FAILURE"
    return [
        f"**Outcome: {verdict}**: the target chose {o['choice']} ({names.get(o['choice'], '?')}) after "
        f"{o['turns']} turn(s); goal was {s['goal']}. Mental-state appeals: {o.get('mental_state_appeals', 0)}, "
        f"violations: {o.get('violations', 0)}."
    ]


def markdown(traj: dict[str, Any]) -> str:
    lines = header(traj)
    for turn in traj.get("turns", []):
        lines += turn_lines(turn)
    lines += outcome_lines(traj)
    return "\n".join(lines).strip() + "\n"


EXPORT_FORMATS = ("md", "jsonl")


def export_text(traj: dict[str, Any], fmt: str) -> str:
    """A session as the CLI's `sessions export` and the TUI's replay write it: Markdown, or one trajectory line."""
    import json

    return markdown(traj) if fmt == "md" else json.dumps(traj, ensure_ascii=False) + "\n"
