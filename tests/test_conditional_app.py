"""A conditional run (--conditional) in the app, driven by a scripted engine: a row of samples
per class, named at its left (half blocks and pixels), k/K to page through the classes, the
status panel's count, the latent walks' classes, and the tutorial's GAN told it has none."""

from __future__ import annotations

import numpy as np
import pytest
from textual.strip import Strip

from tui_gan.core import events as ev
from tui_gan.tui.run_requests import NO_CLASSES, page_start
from tui_gan.tui.screens.interpolation import InterpolationScreen
from tui_gan.tui.state import RunState
from tui_gan.tui.terminal_graphics import Graphics
from tui_gan.tui.widgets import pixels
from tui_gan.tui.widgets.class_grid import ClassRows, class_layout, cut, label_width
from tui_gan.tui.widgets.samples import SamplesView
from tui_gan.tui.widgets.status import StatusPanel, class_ranges, classes_text

from .app_support import ScriptedEngine, quit_app, wait_until

NAMES = ["airplane", "a_class_with_a_very_long_name", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
         "tulip", "zebra"]
COLUMNS = ScriptedEngine.SAMPLE_COLUMNS


def class_samples(count: int = len(NAMES), size: int = 16) -> np.ndarray:
    """Every class's row of COLUMNS samples; class c's are all red 20c + 10, so a tile's
    colour names its class."""
    images = np.zeros((count * COLUMNS, 3, size, size), dtype=np.uint8)
    for c in range(count):
        images[c * COLUMNS:(c + 1) * COLUMNS, 0] = 20 * c + 10
        images[c * COLUMNS:(c + 1) * COLUMNS, 2] = 200
    return images


def conditional_engine(names=NAMES) -> ScriptedEngine:
    return ScriptedEngine(samples=class_samples(len(names)), class_names=list(names))


def lines(widget) -> list[str]:
    return [widget.render_line(y).text for y in range(widget.size.height)]


def status_text(app) -> str:
    return "\n".join(line.rstrip() for line in lines(app.query_one(StatusPanel)))


def row_of_line(view: SamplesView, y: int) -> int | None:
    """The class whose tiles line ``y`` of the panel shows (by their colour), None if none."""
    for segment in view.render_line(y):
        colour = segment.style and segment.style.color
        if colour is not None and segment.text.startswith("▀") and colour.triplet.blue == 200:
            return (colour.triplet.red - 10) // 20
    return None


def assert_rows_labelled(view: SamplesView, classes: list[int]) -> None:
    """Each class's name, cut to the names' column, on a line through its own tiles, top to bottom."""
    layout = view.drawn_layout
    assert layout is not None and len(classes) == layout.rows
    text = lines(view)
    for c, y in zip(classes, layout.lines):
        assert cut(NAMES[c], layout.label_width - 1) in text[y], (c, text[y])
        assert row_of_line(view, y) == c
    labelled = [y for y, line in enumerate(text) if line[:layout.left + layout.label_width].strip()]
    assert labelled == list(layout.lines)  # no name anywhere else


async def samples_ready(pilot, app, first: int = 0) -> SamplesView:
    view = app.query_one(SamplesView)
    await wait_until(pilot, lambda: app.state is RunState.TRAINING and view.shown > 0
                     and view.classes_shown[:1] == [first], what=f"the rows from class {first}")
    await pilot.pause(0.1)
    return view


# ----------------------------------------------------------------------------- pure parts

def test_page_start_steps_by_the_rows_shown_and_wraps():
    assert [page_start(f, 4, 12, 1) for f in (0, 4, 8)] == [4, 8, 0]
    assert [page_start(f, 4, 12, -1) for f in (0, 8, 4)] == [8, 4, 0]
    assert [page_start(f, 4, 10, 1) for f in (0, 4, 6)] == [4, 6, 0]  # the last page ends at the last class
    assert page_start(0, 4, 10, -1) == 6 and page_start(7, 4, 10, 1) == 0  # another viewer's odd start


def test_names_are_cut_with_an_ellipsis_and_their_column_is_a_quarter_at_most():
    assert cut("automobile", 6) == "autom…" and cut("cat", 6) == "cat" and cut("ab cd", 4) == "ab…"
    assert label_width(ClassRows((0, 1), ("cat", "automobile"), 8), 100) == 11  # the longest name and a space
    assert label_width(ClassRows((0,), ("cat",), 8, longest=10), 100) == 11  # the run's longest, shown or not
    assert label_width(ClassRows((0,), ("a" * 40,), 8), 100) == 15
    assert label_width(ClassRows((0,), ("a" * 40,), 8), 28) == 8


def test_class_layout_keeps_rows_whole_and_centres_the_block():
    rows = ClassRows(tuple(range(10)), tuple(NAMES[:10]), COLUMNS)
    layout = class_layout(rows, 16, 46, 24)
    cols, shown, tile = layout.grid
    assert cols <= COLUMNS and cols * shown >= 9 and tile <= 16
    assert layout.left == (46 - layout.label_width - layout.area) // 2
    assert len(set(layout.lines)) == shown  # a line of its own for each name
    pixel = class_layout(rows, 16, 80, 40, (10, 20), gap=2, scale=True)
    assert pixel.grid == (8, 10, 64)  # all of them, at 4x the native size (690 x 800 pixels)
    assert len(set(pixel.lines)) == 10
    assert class_layout(rows, 16, 4, 1).rows == 0


def test_status_names_the_classes_shown():
    assert class_ranges([3, 4, 5, 9, 0]) == "3–5, 9, 0"
    assert classes_text(12, []) == "12 classes"
    assert classes_text(12, [4, 5, 6, 7]) == "4–7 of 12 shown"
    assert classes_text(3, [0, 1, 2]) == "all 3 shown"


# ----------------------------------------------------------------------------- the app

async def test_rows_are_labelled_and_k_pages_through_the_classes(attached_app):
    engine = conditional_engine()
    app = attached_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        view = await samples_ready(pilot, app)
        step = len(view.classes_shown)
        assert 2 <= step < len(NAMES)
        assert_rows_labelled(view, list(range(step)))
        assert "…" in "".join(lines(view))  # the long name is cut
        assert f"class  0–{step - 1} of 12 shown" in status_text(app)

        expected = [step]
        while expected[-1] != 0:  # k: a page on, then back to the first
            expected.append(page_start(expected[-1], step, len(NAMES), 1))
        for first in expected:
            await pilot.press("k")
            view = await samples_ready(pilot, app, first)
            assert_rows_labelled(view, [(first + i) % len(NAMES) for i in range(step)])
        assert engine.classes_asked == expected
        await pilot.press("K")  # from the first page back to the last
        view = await samples_ready(pilot, app, len(NAMES) - step)
        assert engine.classes_asked[-1] == len(NAMES) - step
        await wait_until(pilot, lambda: f"class  {len(NAMES) - step}–11 of 12 shown" in status_text(app),
                         what="the status's classes")
        for _ in range(2):  # k twice before the run can answer (its samples are drawn on this thread):
            app.training_screen.action_show_classes(1)  # the second pages on from the first
        await samples_ready(pilot, app, step)
        assert engine.classes_asked[-1] == step  # (the run may take the two as one: the last)
        await quit_app(pilot, app)


async def test_80x24_shows_rows_and_the_compact_status(attached_app):
    app = attached_app(conditional_engine())
    async with app.run_test(size=(80, 24)) as pilot:
        shown = len((await samples_ready(pilot, app)).classes_shown)
        assert shown >= 1
        assert_rows_labelled(app.query_one(SamplesView), list(range(shown)))
        expected = f"classes 0–{shown - 1} of 12 shown" if shown > 1 else "classes 0 of 12 shown"
        await wait_until(pilot, lambda: expected in status_text(app), what="the compact status line")
        await quit_app(pilot, app)


async def test_k_when_every_class_is_shown_asks_nothing(attached_app):
    engine = conditional_engine(NAMES[:3])
    app = attached_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        view = await samples_ready(pilot, app)
        assert view.classes_shown == [0, 1, 2]
        assert "class  all 3 shown" in status_text(app)
        await pilot.press("k")
        await wait_until(pilot, lambda: any("all 3 classes" in n.message for n in app._notifications), what="the note")
        assert engine.classes_asked == []
        await quit_app(pilot, app)


async def test_k_on_the_tutorials_gan_says_the_run_has_no_classes(attached_app):
    engine = ScriptedEngine(samples=class_samples(8))
    app = attached_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.state is RunState.TRAINING, what="training")
        for key in ("k", "K"):
            await pilot.press(key)
        await wait_until(pilot, lambda: [n.message for n in app._notifications].count(NO_CLASSES) == 2,
                         what="the note")
        assert "\n" not in NO_CLASSES and engine.classes_asked == []
        assert app.query_one(SamplesView).classes_shown == []
        assert "class" not in status_text(app)
        await quit_app(pilot, app)


async def test_the_palette_finds_a_class_by_name_and_k_pages_on_from_it(attached_app):
    engine = conditional_engine()
    app = attached_app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        step = len((await samples_ready(pilot, app)).classes_shown)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        assert [t for t in commands if t.startswith("Samples: from class")] == [f"Samples: from class {n}"
                                                                              for n in NAMES]
        commands["Samples: from class ship"].callback()
        view = await samples_ready(pilot, app, 8)
        assert engine.classes_asked[-1] == 8
        assert_rows_labelled(view, [8 + i for i in range(step)])
        commands["Samples: from class cat"].callback()
        app.training_screen.action_show_classes(1)  # before the answer: on from cat (3), not ship
        after = page_start(3, step, len(NAMES), 1)
        assert after not in (0, 8)
        await samples_ready(pilot, app, after)
        assert engine.classes_asked[-1] == after
        await quit_app(pilot, app)


async def test_the_tutorials_gan_has_no_class_commands(attached_app):
    app = attached_app(ScriptedEngine(samples=class_samples(8)))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.state is RunState.TRAINING, what="training")
        assert not [c for c in app.get_system_commands(app.screen) if "from class" in c.title]
        await quit_app(pilot, app)


async def test_epoch_ends_are_labelled_from_the_first_class(attached_app):
    app = attached_app(conditional_engine())
    async with app.run_test(size=(120, 40)) as pilot:
        step = len((await samples_ready(pilot, app)).classes_shown)
        await pilot.press("k")  # live: the next page; an epoch's end: from the first class
        await samples_ready(pilot, app, step)
        epoch = class_samples()[:10 * COLUMNS]  # the epoch's grid: rows from class 0, whichever a viewer shows
        app.training_screen.show_event(ev.EpochEnd(1, 156, "epoch-1.png", "last.pt", epoch))
        await pilot.press("left_square_bracket")
        view = await samples_ready(pilot, app, 0)
        assert_rows_labelled(view, list(range(step)))
        await pilot.press("right_square_bracket")  # live again: the page asked for
        await samples_ready(pilot, app, step)
        await quit_app(pilot, app)


async def test_latent_walks_name_their_classes(attached_app):
    walks = [(3 * i) % len(NAMES) for i in range(16)]  # as the engine's: 16 walks in the classes shown
    frames = np.stack([class_samples(2)[:16] for _ in range(3)])

    async def open_walks(pilot, app, classes):
        app.training_screen.show_event(ev.Interpolation(1200, 7, frames, classes))
        await wait_until(pilot, lambda: isinstance(app.screen, InterpolationScreen) and app.screen.is_mounted
                         and app.screen.query_one(SamplesView).shown > 0, what="the walks")
        return app.screen.query_one(SamplesView).shown

    def caption(app) -> str:
        return str(app.screen.query_one("#walk-classes").render())

    app = attached_app(conditional_engine())
    async with app.run_test(size=(120, 40)) as pilot:
        await samples_ready(pilot, app)
        shown = await open_walks(pilot, app, walks)
        named = " · ".join(NAMES[c] for c in walks[:shown])
        await wait_until(pilot, lambda: caption(app).endswith(f"down: {named}"), what="the walks shown named")
        await pilot.press("escape")
        await pilot.resize_terminal(50, 20)  # room for fewer walks: the caption names those shown
        fewer = await open_walks(pilot, app, walks)
        assert 0 < fewer < shown
        named = " · ".join(NAMES[c] for c in walks[:fewer])
        await wait_until(pilot, lambda: caption(app).endswith(f"down: {named}"), what="fewer named")
        await pilot.press("escape")
        await open_walks(pilot, app, None)  # the tutorial's: no caption
        assert not app.screen.query("#walk-classes")
        await pilot.press("escape")
        await quit_app(pilot, app)


async def test_pixels_cover_the_tiles_and_the_names_stay_text(attached_app, monkeypatch):
    """Real pixels (a stand-in for textual-image's kitty picture): the picture is made for
    the tiles' cells only, its canvas holds the rows shown, and each line is its name, then
    the picture's cells."""
    made = []

    def fake_picture(canvas, mode, cols, rows, blank, registers=256):
        made.append((canvas, cols, rows))
        return pixels.Picture([Strip.blank(cols)] * rows)

    monkeypatch.setattr(pixels, "make_picture", fake_picture)
    app = attached_app(conditional_engine(), graphics=Graphics("kitty", "", (6, 12)))
    async with app.run_test(size=(120, 40)) as pilot:
        view = await samples_ready(pilot, app)
        await wait_until(pilot, lambda: bool(made), what="the picture")
        await pilot.pause(0.2)
        canvas, cols, rows = made[-1]
        layout = view.drawn_layout
        assert layout is not None and (cols, rows) == (layout.area, view.size.height)
        assert canvas.shape[:2] == (rows * 12, cols * 6)
        background = view.styles.background.rgb[0]
        reds = sorted({int(v) for v in np.unique(canvas[..., 0])} - {background})
        assert reds == [20 * c + 10 for c in view.classes_shown]  # the rows shown, and only they
        text = lines(view)
        for c, y in zip(view.classes_shown, layout.lines):
            assert text[y].rstrip().endswith(cut(NAMES[c], layout.label_width - 1))
        await quit_app(pilot, app)


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])
def test_conditional_screen(snap_compare, attached_app, size):
    from tui_gan.data.builtin import make_builtin

    images = make_builtin(len(NAMES) * COLUMNS, 32, seed=1)
    app = attached_app(ScriptedEngine(run_dir="runs/demo", samples=images, class_names=NAMES), run_name="demo")

    async def ready(pilot):
        await wait_until(pilot, lambda: app.state is RunState.TRAINING and app.query_one(SamplesView).shown > 0
                         and len(app.query_one(SamplesView).classes_shown) > 0, what="a deterministic conditional screen")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=ready)


async def test_a_window_attached_later_shows_the_classes_another_asked_for(serve):
    """``tui-gan attach``: a window that comes after another paged on shows the same classes,
    labelled, from the run's snapshot."""
    from tui_gan.tui.app import TuiGanApp

    served = serve(conditional_engine(), for_app=True)
    first = TuiGanApp(served.viewer, run_name="run")
    async with first.run_test(size=(120, 40)) as pilot:
        step = len((await samples_ready(pilot, first)).classes_shown)
        await pilot.press("k")
        await samples_ready(pilot, first, step)
        await pilot.press("d")  # detach: the run goes on
        await wait_until(pilot, lambda: first.engine_done.is_set(), what="detached")
    later = TuiGanApp(served.viewer, run_name="run")
    async with later.run_test(size=(120, 40)) as pilot:
        view = await samples_ready(pilot, later, step)
        assert_rows_labelled(view, list(range(step, 2 * step)))
        await quit_app(pilot, later)
