"""Gauges for the discriminator's verdicts: a bar over [0, 1] with a mark at 0.5, the value,
and a sparkline of recent values on the same fixed [0, 1] scale."""

from __future__ import annotations

import math
from collections import deque

from rich.text import Text

from .textlines import TextLines

SPARKS = "▁▂▃▄▅▆▇█"
LABEL_WIDTH = 9  # "D(G(z2))" + a space


def sparkline(values: list[float], width: int) -> str:
    """The last ``width`` values in [0, 1] as block characters (fixed scale, not autoscaled)."""
    out = []
    for v in values[-width:]:
        if not math.isfinite(v):
            out.append(" ")
            continue
        v = min(1.0, max(0.0, v))
        out.append(SPARKS[min(len(SPARKS) - 1, int(v * len(SPARKS)))])
    return "".join(out).rjust(width)


def bar(value: float, width: int) -> Text:
    """A bar of ``width`` cells filled to ``value`` with a mark in the middle (0.5).
    Built from a handful of spans: it is redrawn several times a second."""
    text = Text()
    if width <= 0:
        return text
    filled = 0 if not math.isfinite(value) else round(min(1.0, max(0.0, value)) * width)
    mid = width // 2
    cells = ["█" if i < filled else "░" for i in range(width)]
    left, right = "".join(cells[:mid]), "".join(cells[mid + 1 :])
    for part in (left, None, right):
        if part is None:
            text.append("┃", style="bold yellow")
            continue
        solid = part.count("█")
        text.append(part[:solid], style="bright_cyan")
        text.append(part[solid:], style="grey35")
    return text


class Gauge(TextLines):
    """One labelled gauge, e.g. ``D(x)``."""

    DEFAULT_CSS = """
    Gauge { height: 1; }
    """

    def __init__(self, label: str, history: int = 240, **kwargs) -> None:
        super().__init__(**kwargs)
        self.label = label
        self.value = math.nan
        self.history: deque[float] = deque(maxlen=history)

    def update_value(self, value: float, record: bool = True) -> None:
        self.value = value
        if record:
            self.history.append(value)
        self.refresh()

    def extend_history(self, values: list[float]) -> None:
        self.history.extend(values)
        if values:
            self.value = values[-1]
        self.refresh()

    def lines(self, width: int, height: int) -> list[Text]:
        value = "  –  " if not math.isfinite(self.value) else f"{self.value:5.3f}"
        rest = width - LABEL_WIDTH - len(value) - 2
        bar_width = max(10, rest * 3 // 5) if rest >= 20 else max(0, rest)
        spark_width = max(0, rest - bar_width - 1)
        text = Text(self.label.ljust(LABEL_WIDTH), style="bold")
        text.append_text(bar(self.value, bar_width))
        text.append(f" {value} ")
        if spark_width > 0:
            text.append(" " + sparkline(list(self.history), spark_width - 1), style="bright_cyan")
        return [text]
