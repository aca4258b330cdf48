"""Widgets as units: the half-block renderer, gauges, the loss chart helpers."""

import math

import numpy as np

from tui_gan.core.history import HistoryRow
from tui_gan.tui.widgets.gauges import bar, sparkline
from tui_gan.tui.widgets.loss_chart import downsample, ema
from tui_gan.tui.widgets.samples import UPPER_HALF, canvas_to_strips, compose_canvas, fit_grid, render_halfblock
from tui_gan.tui.widgets.status import progress_bar

from .app_support import wait_until


def test_half_block_cell_takes_upper_pixel_as_foreground_and_lower_as_background():
    canvas = np.zeros((2, 3, 3), dtype=np.uint8)
    canvas[0] = [(255, 0, 0), (0, 255, 0), (0, 255, 0)]  # upper pixel row
    canvas[1] = [(0, 0, 255), (9, 9, 9), (9, 9, 9)]  # lower pixel row
    (strip,) = canvas_to_strips(canvas)
    segments = list(strip)
    assert "".join(s.text for s in segments) == UPPER_HALF * 3
    assert segments[0].style.color.triplet == (255, 0, 0)
    assert segments[0].style.bgcolor.triplet == (0, 0, 255)
    # equal neighbouring cells are merged into one segment
    assert len(segments) == 2 and segments[1].text == UPPER_HALF * 2
    assert strip.cell_length == 3


def test_on_a_256_colour_terminal_cells_take_the_nearest_fixed_palette_colour():
    from rich._palettes import EIGHT_BIT_PALETTE
    from rich.color import ColorType

    canvas = np.zeros((2, 3, 3), dtype=np.uint8)
    canvas[0] = [(255, 0, 0), (250, 3, 2), (0, 0, 0)]  # (250, 3, 2) is nearest to the cube's red
    canvas[1] = [(128, 128, 128), (127, 129, 128), (95, 135, 175)]  # a grey and an exact cube colour
    (strip,) = canvas_to_strips(canvas, "256")
    segments = list(strip)
    for seg in segments:
        assert seg.style.color.type == seg.style.bgcolor.type == ColorType.EIGHT_BIT
        assert seg.style.color.number >= 16 and seg.style.bgcolor.number >= 16  # never the themable 16
    assert len(segments) == 2 and segments[0].text == UPPER_HALF * 2  # equal after mapping: merged
    assert EIGHT_BIT_PALETTE[segments[0].style.color.number] == (255, 0, 0)
    assert EIGHT_BIT_PALETTE[segments[0].style.bgcolor.number] == (128, 128, 128)
    assert EIGHT_BIT_PALETTE[segments[1].style.bgcolor.number] == (95, 135, 175)


def test_on_a_16_colour_terminal_cells_take_the_standard_colours():
    canvas = np.array([[[250, 10, 10]], [[10, 10, 240]]], dtype=np.uint8)
    (segment,) = list(canvas_to_strips(canvas, "standard")[0])
    assert segment.style.color.number < 16 and segment.style.bgcolor.number < 16
    assert segment.style.color.number != segment.style.bgcolor.number


def test_fit_grid_keeps_native_size_when_enough_fit_and_shrinks_otherwise():
    assert fit_grid(64, 32, 120, 60) == (3, 3, 32)  # 9 at native size
    cols, rows, tile = fit_grid(64, 32, 46, 24)
    assert tile < 32 and cols * rows >= 9
    assert fit_grid(64, 16, 200, 60)[2] == 16  # never upscaled
    cols, rows, tile = fit_grid(4, 16, 200, 60)
    assert cols * rows >= 4 and tile == 16
    assert fit_grid(64, 32, 3, 1) == (0, 0, 0)  # nothing fits
    cols, rows, tile = fit_grid(64, 32, 30, 12)  # an 80x24 terminal's panel: 4 rather than 1
    assert cols * rows >= 4 and tile >= 8


def test_compose_canvas_places_tiles_and_background():
    images = np.zeros((4, 3, 8, 8), dtype=np.uint8)
    for i in range(4):
        images[i, 0] = 50 * (i + 1)
    canvas = compose_canvas(images, width=17, height=9, background=(1, 2, 3))
    assert canvas.shape == (18, 17, 3)
    reds = {int(v) for v in np.unique(canvas[:, :, 0])}
    assert {50, 100, 150, 200} <= reds  # every tile is there at native size
    assert tuple(canvas[17, 0]) == (1, 2, 3)  # the margin below the tiles is the background
    assert tuple(canvas[0, 8]) == (1, 2, 3)  # and so is the 1-pixel gap between tiles


def test_grayscale_samples_render():
    images = np.full((2, 1, 8, 8), 128, dtype=np.uint8)
    strips = render_halfblock(images, 20, 5)
    assert len(strips) == 5
    colours = {seg.style.color.triplet for s in strips for seg in s if seg.style and seg.style.color}
    assert (128, 128, 128) in colours


def test_gauge_bar_and_sparkline():
    text = bar(0.75, 20)
    assert text.plain.count("█") == 14 and "┃" in text.plain and len(text.plain) == 20
    assert bar(float("nan"), 10).plain.count("█") == 0
    assert sparkline([0.0, 0.5, 1.0], 5) == "  ▁▅█"
    assert sparkline([2.0, -1.0], 2) == "█▁"  # clamped to [0, 1]


def test_ema_and_downsample():
    assert ema([1.0, 1.0, 1.0]) == [1.0, 1.0, 1.0]
    smoothed = ema([0.0, 10.0], alpha=0.5)
    assert smoothed == [0.0, 5.0]
    xs, ys = downsample(list(range(1000)), [1.0] * 1000, 100)
    assert len(xs) == 100 and all(y == 1.0 for y in ys) and xs[-1] == 999
    xs, ys = downsample([1, 2, 3], [math.nan, 2.0, 4.0], 1)
    assert ys == [3.0]


def test_progress_bar_width_and_percentage():
    text = progress_bar(21, 42, 30)
    assert len(text.plain) == 30 and text.plain.endswith(" 50%")
    assert progress_bar(0, 0, 10).plain.endswith("  0%")


async def test_loss_chart_draws_new_rows_at_most_every_interval():
    from textual.app import App

    from tui_gan.tui.widgets.loss_chart import LossChart

    timed = []

    class Recording(LossChart):
        def note_build_time(self, seconds):  # the interval stays as asked (checked below)
            timed.append(seconds)

    class ChartApp(App):
        def compose(self):
            yield Recording(redraw_interval=0.3)

    app = ChartApp()
    async with app.run_test(size=(80, 20)) as pilot:
        chart = app.query_one(LossChart)
        plots = []
        original = chart.replot
        chart.replot = lambda: (plots.append(len(chart.steps)), original())
        row = HistoryRow(1, 0, 1.0, 2.0, 0.5, 0.5, 0.5, 2e-4, 2e-4, 100.0, 1.0)
        chart.add_rows([row])  # the first rows are drawn at once
        chart.add_rows([row._replace(step=2)])
        chart.add_rows([row._replace(step=3)])
        assert plots == [1]
        await wait_until(pilot, lambda: len(plots) > 1, what="the later redraw")
        assert plots == [1, 3]  # one later redraw, with every row
        assert chart.steps == [1.0, 2.0, 3.0]

        # slow builds space the redraws out to keep within CPU_SHARE of a core; fast ones
        # never bring the interval under the one asked for
        from tui_gan.tui.widgets.loss_chart import CPU_SHARE

        assert len(timed) >= 2 and min(timed) > 0  # every build is timed
        LossChart.note_build_time(chart, 0.05)
        assert chart._redraws.interval == 0.05 / CPU_SHARE
        LossChart.note_build_time(chart, 0.0001)
        assert chart._redraws.interval == 0.3


async def test_text_lines_keep_styles_truncate_and_rebuild_only_changed_lines():
    from rich.text import Text
    from textual.app import App

    from tui_gan.tui.widgets.textlines import TextLines

    class Two(TextLines):
        DEFAULT_CSS = "Two { height: 2; width: 12; }"
        first = "short"

        def lines(self, width, height):
            return [Text(self.first, style="bold"), Text().append("dim", style="dim").append(" plain")]

    class Host(App):
        def compose(self):
            yield Two()

    app = Host()
    async with app.run_test(size=(20, 4)):
        widget = app.query_one(Two)
        first, second = widget.render_line(0), widget.render_line(1)
        assert first.cell_length == second.cell_length == 12  # padded to the widget's width
        assert next(iter(first)).style.bold  # the Text's own style survives
        segments = list(second)
        assert segments[0].text == "dim" and segments[0].style.dim and not segments[1].style.dim
        assert widget.render_line(5).cell_length == 12  # past the last line: blank

        widget.first = "a line far too long to fit"
        widget.refresh()
        changed = widget.render_line(0)
        assert changed.text.endswith("…") and changed.cell_length == 12
        assert widget.render_line(1) is second  # the unchanged line's Strip is reused


def test_the_status_bar_shows_the_last_epoch_full_once_every_epoch_is_done():
    from tui_gan.core import events as ev
    from tui_gan.core.runview import RunView
    from tui_gan.tui.widgets.status import StatusPanel

    view = RunView()
    view.apply(ev.Started("cpu", "cpu", {"epochs": 8}, "builtin", 1248, 156, 1248, "runs/x", 156, 1, None, [],
                          2e-4, 2e-4))
    panel = StatusPanel(view)  # epoch 1 ended: the second starts empty
    assert panel.lines(46, 12)[1].plain.startswith("epoch 2/8") and panel.lines(46, 12)[1].plain.endswith("  0%")
    panel.progress = ev.Progress(1248, 8, 0, 156, 1248, 0.5, 2.0, 0.7, 0.3, 0.2, 400.0, 0.0, 60.0, 2e-4, 2e-4)
    # the run ended after its last epoch
    assert panel.lines(46, 12)[1].plain.startswith("epoch 8/8") and panel.lines(46, 12)[1].plain.endswith("100%")