"""Comparing runs in the app: the overlay from the start (--compare), x-axis by images seen,
the picker (o) reading the runs folder, following a compared run that grows, clearing."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import OptionList

from tui_gan.commands.runstate import run_summaries
from tui_gan.core.comparison import ComparedRun
from tui_gan.core.history import HistoryRow
from tui_gan.engine.metrics import MetricsCsv
from tui_gan.tui.screens.compare_picker import ComparePicker
from tui_gan.tui.state import RunState
from tui_gan.tui.widgets.loss_chart import LossChart
from tui_gan.tui.widgets.overlay import Alignment

from .app_support import ScriptedEngine, open_screen, quit_app, synthetic_history, wait_until
from .test_compare import make_run, quality_row

SIZE = (120, 40)


def baseline_history(n: int = 90) -> list[HistoryRow]:
    """Another run's curves: lower losses than synthetic_history's, and two measurements."""
    rows = [row._replace(loss_d=row.loss_d * 0.6, loss_g=row.loss_g * 0.7) for row in synthetic_history(n)]
    return rows + [quality_row(400, 48.0), quality_row(n * 10, 31.0)]


def runs_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "runs"
    make_run(folder / "baseline", baseline_history(), batch_size=32)
    make_run(folder / "wide", synthetic_history(50) + [quality_row(500, 27.5)], batch_size=128)
    return folder


async def test_compare_from_the_start_aligns_by_images_and_follows_the_run(attached_app, tmp_path):
    folder = runs_folder(tmp_path)
    compared = ComparedRun.open(folder / "baseline")
    app = attached_app(ScriptedEngine(run_dir=str(folder / "demo")), compare=compared, list_runs=run_summaries)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.state is RunState.TRAINING, what="training")
        chart = app.query_one(LossChart)
        assert chart.overlay is not None and chart.overlay.name == "baseline" and chart.border_subtitle == "vs baseline"
        built = chart.plt.build()
        assert "loss_D baseline" in built and "loss_G baseline" in built and "step" in built
        assert chart.batch_size == 64  # the Started event's
        await pilot.press("x")
        assert chart.alignment is Alignment.IMAGES
        # by images seen: this run's 1200 steps of 64 and baseline's 900 of 32, in thousands
        assert chart._x_axis([1200], [900]) == ([76.8], [28.8], "images seen (k)")
        assert "images seen (k)" in chart.plt.build()
        await pilot.press("c")
        assert "SWD baseline" in chart.plt.build()
        # the compared run trains on: its new rows are read at the next look
        writer = MetricsCsv(compared.run.metrics, baseline_history() + [quality_row(1000, 25.0)])
        writer.close()
        app.training_screen.comparison.look_again()
        await wait_until(pilot, lambda: chart.overlay.swd[-1] == 25.0, what="the compared run's new measurement")
        await pilot.press("x")
        assert chart.alignment is Alignment.STEP
        await quit_app(pilot, app)


async def test_o_picks_a_run_from_the_folder_and_clears_it(attached_app, tmp_path):
    folder = runs_folder(tmp_path)
    app = attached_app(ScriptedEngine(run_dir=str(folder / "demo")), list_runs=run_summaries)
    make_run(folder / "demo", synthetic_history(3))  # the watched run itself: not offered
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.state is RunState.TRAINING, what="training")
        await open_screen(pilot, app, "o", ComparePicker)
        picker = app.screen
        await wait_until(pilot, lambda: picker.runs is not None, what="the runs listed")
        assert [run.name for run in picker.runs] == ["baseline", "wide"]
        wide = picker.runs[1]
        assert (wide.state, wide.step, wide.best_swd) == ("unknown", 500, 27.5)
        options = picker.query_one(OptionList)
        assert "best SWD  27.50" in str(options.get_option_at_index(1).prompt)
        await pilot.press("down", "enter")  # the second run
        chart = app.query_one(LossChart)
        await wait_until(pilot, lambda: chart.overlay is not None, what="the picked run on the chart")
        assert chart.overlay.name == "wide" and chart.overlay.batch_size == 128
        await open_screen(pilot, app, "o", ComparePicker)
        await wait_until(pilot, lambda: app.screen.runs is not None, what="the runs listed")
        assert app.screen.query_one(OptionList).get_option_at_index(0).id == "none"
        await pilot.press("enter")  # none: stop comparing
        await wait_until(pilot, lambda: not isinstance(app.screen, ComparePicker), what="the picker closed")
        assert chart.overlay is None and app.training_screen.comparison.compared is None and not chart.border_subtitle
        await open_screen(pilot, app, "o", ComparePicker)
        await pilot.press("escape")  # cancel: nothing changes
        await wait_until(pilot, lambda: not isinstance(app.screen, ComparePicker), what="the picker closed")
        assert chart.overlay is None
        await quit_app(pilot, app)


async def test_a_compared_run_without_losses_is_drawn_without_them():
    """plotext cannot build a labelled series of NaN only: another run's file with no loss_G
    (an older or hand-made metrics.csv) must not take the app down."""
    from textual.app import App

    from tui_gan.tui.widgets.loss_chart import LossChart
    from tui_gan.tui.widgets.overlay import Overlay

    rows = [HistoryRow.from_values(("step", "epoch", "loss_d"), (step, 0, 0.5 + step / 1000)) for step in range(0, 200, 10)]

    class ChartOnly(App):
        def compose(self):
            yield LossChart(id="chart")

    app = ChartOnly()
    async with app.run_test(size=(100, 30)) as pilot:
        chart = app.query_one(LossChart)
        chart.add_rows(synthetic_history(20))
        chart.set_overlay(Overlay("odd", 64, rows))
        await pilot.pause(0.3)
        chart.set_log_scale(True)
        await pilot.pause(0.3)
        assert chart.overlay is not None  # drawn, and the app still runs
