"""A widget drawn as a few lines of Rich Text through Textual's Line API.

The status panel and the gauges are redrawn every second while the GAN trains, and each
redraw holds the GIL that the training thread needs. Returning a Text from ``render()``
sends it through Textual's Visual pipeline (Text → Content → strips, then the ANSI colour
filter) on every redraw. Here each line is turned into a Strip once and reused while its
text is unchanged, so a redraw costs only the lines that changed.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget


class TextLines(Widget):
    """Subclasses implement ``lines(width, height)``; ``refresh()`` asks for them again."""

    def __init__(self, **kwargs) -> None:
        self._lines: list[Strip] | None = None
        self._strips: dict[tuple, Strip] = {}
        super().__init__(**kwargs)

    def lines(self, width: int, height: int) -> list[Text]:
        raise NotImplementedError

    def refresh(self, *regions, repaint: bool = True, layout: bool = False, recompose: bool = False):
        self._lines = None
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def _strip(self, text: Text, width: int, widget_style: Style) -> Strip:
        key = (width, text.plain, tuple(text.spans), text.style, widget_style)
        strip = self._strips.get(key)
        if strip is None:
            if len(self._strips) > 256:  # old lines: a few per redraw, never needed again
                self._strips.clear()
            text = text.copy()
            text.truncate(width, overflow="ellipsis")
            console = self.app.console
            base = console.get_style(text.style, default=Style.null())  # Text.render leaves it out
            strip = Strip(list(text.render(console))).apply_style(base)
            strip = strip.crop_extend(0, width, None).apply_style(widget_style)
            self._strips[key] = strip
        return strip

    def render_line(self, y: int) -> Strip:
        width, height = self.size
        if self._lines is None:
            widget_style = self.rich_style  # not cheap: it walks the ancestors' backgrounds
            self._lines = [self._strip(text, width, widget_style) for text in self.lines(width, height)]
        if y < len(self._lines):
            return self._lines[y]
        return Strip.blank(width, self.rich_style)
