"""Server-rendered bar charts (inline SVG, no script): the geometry is computed here, drawn by
`_macros/charts.html`. Each chart carries a title, a description and its data as a table for people who do not see
it; colours come from CSS classes (print-friendly, no style attributes)."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 76, 8, 12, 34
MAX_LABELS = 12


@dataclass
class Rect:
    x: float
    y: float
    w: float
    h: float
    series: int
    text: str  # the value for people (tooltip and table)


@dataclass
class Group:
    label: str
    values: list[int]
    shown_label: bool = True
    x: float = 0
    rects: list[Rect] = field(default_factory=list)


@dataclass
class Chart:
    id: str
    title: str
    description: str
    series: list[str]
    groups: list[Group]
    ticks: list[tuple[float, str]]
    fmt: Callable[[int], str]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    baseline: float = HEIGHT - BOTTOM

    @property
    def empty(self) -> bool:
        return not any(v for g in self.groups for v in g.values)


def _nice_max(value: int) -> int:
    if value <= 0:
        return 1
    magnitude = 10 ** int(math.floor(math.log10(value)))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return int(step * magnitude)
    return 10 * magnitude


def bar_chart(chart_id: str, title: str, description: str, series: Sequence[str],
              groups: Sequence[tuple[str, Sequence[int]]], fmt: Callable[[int], str]) -> Chart:
    """Grouped bars: `groups` is [(label, [value per series])]; values are non-negative integers (cents, counts)."""
    top = _nice_max(max((v for _, values in groups for v in values), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(groups), 1)
    bar_w = max(min(slot * 0.8 / max(len(series), 1), 48), 1.5)
    every = max(1, math.ceil(len(groups) / MAX_LABELS))
    out = []
    for i, (label, values) in enumerate(groups):
        g = Group(label, list(values), shown_label=i % every == 0, x=LEFT + slot * (i + 0.5))
        start = g.x - bar_w * len(series) / 2
        for s, v in enumerate(values):
            h = plot_h * v / top
            g.rects.append(Rect(round(start + s * bar_w, 2), round(TOP + plot_h - h, 2), round(bar_w * 0.92, 2),
                                round(h, 2), s, fmt(v)))
        out.append(g)
    ticks = [(round(TOP + plot_h - plot_h * k / 4, 2), fmt(top * k // 4)) for k in range(5)]
    return Chart(chart_id, title, description, list(series), out, ticks, fmt)
