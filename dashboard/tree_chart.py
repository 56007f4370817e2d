"""The advisor's decision tree as a plotly figure, with the path an advice took lit up.

Pure: the tree (``kdcore.advisor.TREE``) and the ids of the fired branches in, a Figure out.
One column per step: the step's question over its branches, tried top to bottom. The questions are
linked in order along the top, and each column is lit from its question down to the branch that fired.
"""

from __future__ import annotations

import plotly.graph_objects as go

from kdcore.advisor import STEPS, TREE, Branch

LIT = "#F58518"
DIM = "#BDBDBD"
STEP = "#4C78A8"


def _positions() -> dict[str, tuple[float, float]]:
    """(x, y) of every node: the situation on the left, then each step's question and its branches."""
    spots: dict[str, tuple[float, float]] = {"situation": (0.0, 0.0)}
    for step in STEPS:
        spots[f"step{step}"] = (float(step), 0.0)
        for row, branch in enumerate(b for b in TREE if b.step == step):
            spots[branch.id] = (float(step), -1.0 - row)
    return spots


def decision_tree(fired: list[str], title: str = "Decision tree") -> go.Figure:
    """Every step and branch; the edges and nodes on the path (``fired`` branch ids) drawn in colour."""
    spots = _positions()
    lit = set(fired)
    figure = go.Figure()

    def edge(a: str, b: str, on: bool) -> None:
        (x0, y0), (x1, y1) = spots[a], spots[b]
        figure.add_trace(go.Scatter(x=[x0, x1], y=[y0, y1], mode="lines", hoverinfo="skip", showlegend=False,
                                    line={"color": LIT if on else DIM, "width": 4 if on else 1}))

    for on in (False, True):  # grey first, so the lit path is drawn on top
        for branch in TREE:
            if (branch.id in lit) == on:
                edge(f"step{branch.step}", branch.id, on)
    for a, b in zip(["situation", *(f"step{s}" for s in STEPS)], [f"step{s}" for s in STEPS], strict=False):
        edge(a, b, True)  # the questions are asked in order; each column is lit down to its answer

    def nodes(items: list[tuple[str, str, str]], color: str, size: int, name: str,
              position: str = "middle right") -> None:
        figure.add_trace(go.Scatter(
            x=[spots[i][0] for i, _, _ in items], y=[spots[i][1] for i, _, _ in items], mode="markers+text",
            text=[label for _, label, _ in items], textposition=position, hovertext=[h for _, _, h in items],
            hoverinfo="text", marker={"size": size, "color": color, "line": {"width": 1, "color": "white"}},
            name=name, showlegend=False))

    def describe(b: Branch) -> str:
        return f"<b>{b.label}</b><br>if {b.rule}<br>then {b.outcome}"

    nodes([("situation", "Situation", "your teacher, student and task")], STEP, 16, "situation", "top right")
    nodes([(f"step{s}", f"<b>{s}. {q}</b>", q) for s, q in STEPS.items()], STEP, 16, "steps", "top right")
    nodes([(b.id, b.label, describe(b)) for b in TREE if b.id not in lit], DIM, 10, "branches")
    nodes([(b.id, f"<b>{b.label}</b>", describe(b)) for b in TREE if b.id in lit], LIT, 14, "path")
    depth = max(len([b for b in TREE if b.step == s]) for s in STEPS)
    figure.update_layout(
        title=title, height=110 + 42 * depth, margin={"l": 10, "r": 10, "t": 40, "b": 10}, hovermode="closest",
        xaxis={"visible": False, "range": [-0.1, len(STEPS) + 0.9]},
        yaxis={"visible": False, "range": [-depth - 0.6, 0.9]}, plot_bgcolor="rgba(0,0,0,0)")
    return figure
