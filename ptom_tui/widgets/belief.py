"""The persuader's belief about each preference as bars, and the counterfactual of its last move.

It renders the shared belief and counterfactual schemas (HELPERS.md) as they come: from a live game or a stored
turn. It computes nothing; a turn without a belief (a baseline persuader) says so.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

LEVELS = (("like", "green"), ("neutral", "grey62"), ("dislike", "red"))


def bar(p: float, width: int = 10) -> str:
    """A probability as a bar of eighth blocks, so 0.05 steps are visible in ten cells."""
    p = min(1.0, max(0.0, float(p)))
    eighths = round(p * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + ("▏▎▍▌▋▊▉"[part - 1] if part else "")).ljust(width)


def render_belief(belief: dict[str, Any] | None, counterfactual: dict[str, Any] | None, turn: int | None):
    """A Rich renderable of one turn's belief and counterfactual."""
    title = Text(f"Belief at turn {turn}" if turn else "Belief", style="bold")
    parts: list[Any] = [title]
    if turn is None:
        parts.append(Text("shown after each persuader turn", style="dim"))
    elif not belief or not belief.get("preferences"):
        parts.append(Text("this persuader reports no belief", style="dim"))
    else:
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True, max_width=10, overflow="ellipsis")
        table.add_column(no_wrap=True, width=2)
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True, justify="right")
        for attr, dist in belief["preferences"].items():
            for i, (level, colour) in enumerate(LEVELS):
                p = float(dist.get(level, 0.0))
                table.add_row(attr if i == 0 else "", {"like": "+", "neutral": "0", "dislike": "-"}[level],
                              Text(bar(p), style=colour), f"{p:.2f}")
        parts.append(table)
        extra = []
        if belief.get("predicted_choice"):
            extra.append(f"predicted choice {belief['predicted_choice']}")
        if belief.get("p_goal") is not None:
            extra.append(f"P(goal) {float(belief['p_goal']):.2f}")
        if extra:
            parts.append(Text(", ".join(extra)))
    parts.append(Text(""))
    parts.append(Text("Counterfactual of the move", style="bold"))
    if turn is None:
        parts.append(Text("-", style="dim"))
    elif not counterfactual:
        parts.append(Text("none reported", style="dim"))
    else:
        parts.append(Text(str(counterfactual.get("move", "?")), style="italic"))
        before, after = counterfactual.get("p_goal_before"), counterfactual.get("p_goal_after")
        if before is not None and after is not None:
            arrow = Text(f"P(goal) {float(before):.2f} -> {float(after):.2f}")
            arrow.stylize("green" if after >= before else "red", 8)
            parts.append(arrow)
        if counterfactual.get("predicted_choice"):
            parts.append(Text(f"then predicted choice {counterfactual['predicted_choice']}"))
        for alt in (counterfactual.get("alternatives") or [])[:3]:
            p = alt.get("p_goal")
            parts.append(Text(f"  instead {alt.get('move')}: " + ("?" if p is None else f"{float(p):.2f}"), style="dim"))
    return Group(*parts)


class BeliefPanel(Static):
    """Shows one turn at a time; `show(turn_dict)` takes a trajectory turn (DESIGN.md 2)."""

    turn_index: int | None = None  # the turn shown, for whoever needs to know without reading the render

    def on_mount(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.turn_index = None
        self.update(render_belief(None, None, None))

    def show(self, turn: dict[str, Any]) -> None:
        self.turn_index = turn.get("index")
        self.update(render_belief(turn.get("belief"), turn.get("counterfactual"), self.turn_index))
