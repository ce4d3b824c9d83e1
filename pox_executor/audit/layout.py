"""A layered (Sugiyama-style) layout of a job DAG, computed once in Python for the HTML explorer.

Owns node positions only: each job's layer is its longest path from a job without parents; jobs
in a layer are ordered by a few barycenter sweeps (down, then up) to shorten edges; a layer wider
than `max_row` jobs is wrapped into several rows, so that a run of 10,000 jobs stays a picture
one can zoom into rather than a line a million pixels long. Linear in nodes plus edges per sweep.
The drawing itself is the browser's (`html_assets/explorer.js`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import networkx as nx

NODE_WIDTH = 160
NODE_HEIGHT = 36
GAP_X = 24
GAP_Y = 64
SWEEPS = 4


@dataclass(frozen=True)
class Layout:
    """Top-left corner of every node, the number of layers and the bounding box."""

    positions: Mapping[Hashable, tuple[int, int]]
    layers: int
    width: int
    height: int


def max_row_for(size: int) -> int:
    """Jobs per row before a layer wraps: 0.8 times the square root of the job count, which
    makes a large DAG's picture about as wide as a landscape screen (boxes are wider than tall)."""
    return max(24, int(math.sqrt(size) * 0.8))


def layered_layout(
    dag: nx.DiGraph, order: Sequence[Hashable], *, max_row: int | None = None
) -> Layout:
    """Positions for `dag`'s nodes; `order` is a topological order (ties keep this order)."""
    if not order:
        return Layout({}, 0, 0, 0)
    layer: dict[Hashable, int] = {}
    for node in order:
        parents = [layer[p] for p in dag.predecessors(node) if p in layer]
        layer[node] = 1 + max(parents) if parents else 0
    count = 1 + max(layer.values())
    layers: list[list[Hashable]] = [[] for _ in range(count)]
    for node in order:
        layers[layer[node]].append(node)
    rank = {node: float(i) for row in layers for i, node in enumerate(row)}
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        sequence = layers[1:] if downward else list(reversed(layers[:-1]))
        for row in sequence:
            neighbours = dag.predecessors if downward else dag.successors
            keys = {}
            for node in row:
                near = [rank[n] for n in neighbours(node) if n in rank]
                keys[node] = sum(near) / len(near) if near else rank[node]
            row.sort(key=lambda n: keys[n])
            for i, node in enumerate(row):
                rank[node] = float(i)
    limit = max_row or max_row_for(len(order))
    positions: dict[Hashable, tuple[int, int]] = {}
    y = 0
    width = 0
    for row in layers:
        for start in range(0, len(row), limit):
            chunk = row[start : start + limit]
            row_width = len(chunk) * (NODE_WIDTH + GAP_X) - GAP_X
            width = max(width, row_width)
            for i, node in enumerate(chunk):
                positions[node] = (i * (NODE_WIDTH + GAP_X) - row_width // 2, y)
            y += NODE_HEIGHT + (GAP_Y if start + limit >= len(row) else GAP_X)
    return Layout(positions, count, width, y - GAP_Y)
