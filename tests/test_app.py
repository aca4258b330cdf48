"""The Textual app, driven with Pilot: keys, dialog, worker lifecycle, errors."""

from __future__ import annotations

import queue
import signal
from pathlib import Path

import torch

from tui_gan.core import events as ev
from tui_gan.core.errors import UserError
from tui_gan.core.history import HistoryRow
from tui_gan.engine.engine import Engine
from tui_gan.engine.gan import Gan
from tui_gan.tui.app import TuiGanApp
from tui_gan.tui.panels import PROGRESS_REDRAW_S
from tui_gan.tui.state import RunState
from tui_gan.tui.widgets.gauges import Gauge
from tui_gan.tui.widgets.loss_chart import LossChart
from tui_gan.tui.widgets.samples import SamplesView
from tui_gan.tui.widgets.status import StatusPanel

from .app_support import ScriptedEngine, open_screen, press, quit_app, wait_until
from .conftest import EXPLICIT, tiny_config, wait

SIZE = (120, 40)


def real_engine(tmp_path: Path, **overrides) -> Engine:
    config = tiny_config(**{"epochs": 200, "progress_interval": 0.05, "log_interval": 0.2,
                            "sample_interval": 0.5, **overrides})
    return Engine(config, tmp_path / "run", explicit=EXPLICIT)


def real_app(attached_app, tmp_path: Path, **overrides) -> TuiGanApp:
    """The app attached to a real engine served on a socket (as a training service serves it)."""
    return attached_app(real_engine(tmp_path, **overrides), run_name="run")


def log_text(app: TuiGanApp) -> str:
    """The event log's text, wrapped lines rejoined (also while a dialog is on top). A line
    wrapped at a space loses that space: compare with ``logged``."""
    return "".join(line.text for line in app.training_screen.event_log.lines)


def logged(app: TuiGanApp, text: str) -> bool:
    """Whether ``text`` is in the event log, wherever the log wrapped it."""
    return "".join(text.split()) in "".join(log_text(app).split())


async def test_training_keys_and_quit_saves(attached_app, tmp_path):
    app = real_app(attached_app, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.state is RunState.TRAINING, what="training")
        await wait_until(pilot, lambda: app.query_one(StatusPanel).step > 2, what="steps")
        assert app.query_one("#gauge-d_x", Gauge).history  # gauges move
        await wait_until(pilot, lambda: app.query_one(SamplesView).shown > 0, what="samples")

        # pause: "pausing…" at once, "paused" when the engine confirms
        app.training_screen.action_toggle_pause()  # what space does; checked before the engine can answer
        assert app.state is RunState.PAUSING
        await wait_until(pilot, lambda: app.state is RunState.PAUSED, what="paused")
        view = app.training_screen.view  # the last progress before the pause is drawn within PROGRESS_REDRAW_S
        await wait_until(pilot, lambda: app.query_one(StatusPanel).step == view.step, what="the last progress drawn")
        step = view.step
        await pilot.pause(0.3)  # paused: nothing moves, in the run or on the panel
        assert view.step == step and app.query_one(StatusPanel).step == step
        await press(pilot, "space")
        await wait_until(pilot, lambda: app.state is RunState.TRAINING, what="resumed")

        # snapshot and export write files and show their paths
        await press(pilot, "s")
        await wait_until(pilot, lambda: logged(app, "snapshot saved"), what="snapshot")
        snaps = list((tmp_path / "run" / "checkpoints").glob("snapshot-*.pt"))
        assert snaps and logged(app, str(snaps[0]))
        assert list((tmp_path / "run" / "samples").glob("snapshot-*.png"))
        await press(pilot, "e")
        await wait_until(pilot, lambda: logged(app, "samples exported"), what="export")
        assert list((tmp_path / "run" / "samples").glob("export-step*.png"))

        # pause with space, then toggle auto-pause (while paused, so no epoch end races it)
        await press(pilot, "space")
        await wait_until(pilot, lambda: app.state is RunState.PAUSED, what="paused by space")
        await press(pilot, "a")
        await wait_until(pilot, lambda: app.control.pause_at_epoch_end is True, what="auto-pause on")
        await press(pilot, "a")
        await wait_until(pilot, lambda: app.control.pause_at_epoch_end is False, what="auto-pause off")

        # q saves last.pt and quits
        await quit_app(pilot, app)
    assert app.return_code == 0
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] >= step


async def test_learning_rate_dialog_validates_and_applies(attached_app, tmp_path):
    from textual.widgets import Button, Input, Label

    from tui_gan.tui.screens.learning_rate import LearningRateDialog

    app = attached_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.state is RunState.TRAINING, what="training")
        view, panel = app.training_screen.view, app.query_one(StatusPanel)
        await open_screen(pilot, app, "l", LearningRateDialog)
        dialog = app.screen
        g = dialog.query_one("#lr-g", Input)
        assert g.value == "0.0002"
        for bad, message in (("abc", "not a number"), ("-1", "positive"), ("inf", "finite"), ("0", "positive"),
                             ("", "enter")):
            g.value = bad
            await pilot.pause()
            assert message in str(dialog.query_one("#lr-g-msg", Label).render())
            assert dialog.query_one("#lr-epoch", Button).disabled
        g.value = "1e-3"
        dialog.query_one("#lr-d", Input).value = "5e-4"
        await pilot.pause()
        assert not dialog.query_one("#lr-epoch", Button).disabled
        await pilot.click("#lr-epoch")
        await wait_until(pilot, lambda: view.lr_pending == ev.LrPending(1e-3, 5e-4), what="pending")
        assert logged(app, "will apply at the end of this epoch")
        await wait_until(pilot, lambda: "→ G 0.001" in panel_text(panel), what="shown")

        # apply now
        await open_screen(pilot, app, "l", LearningRateDialog)
        assert app.screen.query_one("#lr-g", Input).value == "0.001"  # the pending rates
        app.screen.query_one("#lr-g", Input).value = "3e-4"
        await pilot.pause()
        await pilot.click("#lr-now")
        await wait_until(pilot, lambda: view.lrs == (3e-4, 5e-4), what="applied")
        assert view.lr_pending is None
        await wait_until(pilot, lambda: "G 0.0003  D 0.0005" in panel_text(panel), what="shown")
        assert "→" not in panel_text(panel)

        # reset: the rates the run started with, back in the fields, sent as a reset
        await open_screen(pilot, app, "l", LearningRateDialog)
        await pilot.click("#lr-reset")
        await pilot.pause()
        assert [app.screen.query_one(f"#lr-{net}", Input).value for net in "gd"] == ["0.0002", "0.0002"]
        await pilot.click("#lr-now")
        await wait_until(pilot, lambda: view.lrs == (2e-4, 2e-4), what="reset")

        # escape cancels
        await open_screen(pilot, app, "l", LearningRateDialog)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, LearningRateDialog), what="closed")
        await quit_app(pilot, app)


def panel_text(panel: StatusPanel) -> str:
    return "\n".join(panel.render_line(y).text for y in range(panel.size.height))


async def test_help_log_scale_theme_and_palette(attached_app, tmp_path):
    from tui_gan.tui.screens.help import HelpScreen

    app = attached_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.state is RunState.TRAINING, what="training")
        await open_screen(pilot, app, "question_mark", HelpScreen)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, HelpScreen), what="help closed")
        chart = app.query_one(LossChart)
        assert not chart.log_scale
        await pilot.press("y")
        assert chart.log_scale
        theme = app.theme
        await pilot.press("t")
        assert app.theme != theme
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for expected in ("Pause / resume", "Snapshot: full checkpoint + sample PNG", "Export the samples as a PNG grid",
                         "Change the learning rates", "Pause at every epoch end (on/off)", "Stop the training (saving last.pt) and quit"):
            assert expected in titles
        await quit_app(pilot, app)


async def test_quality_is_measured_on_m_and_charted_on_c(attached_app, tmp_path):
    app = real_app(attached_app, tmp_path, quality_images=64)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: logged(app, "quality at step 0"), what="the first measurement")
        chart = app.query_one(LossChart)
        await press(pilot, "m")
        await wait_until(pilot, lambda: log_text(app).count("quality at step") >= 2, what="measured on request")
        assert len(chart.quality_steps) >= 2 and all(v > 0 for v in chart.quality["swd"])
        await press(pilot, "c")
        await wait_until(pilot, lambda: chart.show_quality, what="the quality chart")
        assert chart.border_title == "Quality"
        await pilot.pause(0.1)
        assert "SWD" in chart.plt.build()  # the quality plot, with its legend
        await press(pilot, "c")
        await wait_until(pilot, lambda: not chart.show_quality, what="the losses again")
        assert chart.border_title == "Losses"
        await quit_app(pilot, app)


async def test_browse_epoch_samples_and_write_the_gif(attached_app, tmp_path):
    from tui_gan.tui.widgets.samples import SamplesView

    app = real_app(attached_app, tmp_path, epochs=3)  # 14 steps an epoch
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.state is RunState.FINISHED, what="finished", timeout=60)
        view = app.query_one(SamplesView)
        assert view.border_subtitle.startswith("step 42")
        await pilot.press("left_square_bracket")
        assert view.border_subtitle.startswith("epoch 3 · 3/3")
        await pilot.press("left_square_bracket", "left_square_bracket", "left_square_bracket")
        assert view.border_subtitle.startswith("epoch 1 · 1/3")  # stops at the first
        await pilot.press("right_square_bracket")
        assert view.border_subtitle.startswith("epoch 2 · 2/3")
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert view.border_subtitle.startswith("step 42")  # past the newest: live again
        await pilot.press("g")
        await wait_until(pilot, lambda: logged(app, "progression GIF (3 epochs)"), what="gif")
        assert (tmp_path / "run" / "samples" / "progression.gif").is_file()
        await quit_app(pilot, app)


async def test_history_is_restored_in_the_chart(attached_app, tmp_path):
    app = attached_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.state is RunState.TRAINING, what="training")
        chart = app.query_one(LossChart)
        assert len(chart.steps) == 120
        assert len(app.query_one("#gauge-d_x", Gauge).history) >= 120
        await quit_app(pilot, app)


async def test_finished_run_stays_open_until_q(attached_app, tmp_path):
    app = real_app(attached_app, tmp_path, max_steps=3)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.state is RunState.FINISHED, what="finished")
        await pilot.pause(0.2)
        assert app.is_running
        assert logged(app, "finished (max steps)")  # the wording is core/report.py's
        await pilot.press("q")
    assert app.return_code == 0


async def test_bad_input_in_the_worker_exits_with_code_2():
    def broken():
        raise UserError("--data /nope: no such file or folder")

    app = TuiGanApp(broken)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.return_code is not None, what="exit")
    assert app.return_code == 2


async def test_engine_error_is_shown_not_crashed(attached_app, tmp_path, monkeypatch):
    def flaky(self, real):
        raise RuntimeError("CUDA out of memory. Tried to allocate 1 GiB")

    monkeypatch.setattr(Gan, "train_step", flaky)
    app = real_app(attached_app, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.state is RunState.ERROR, what="error")
        assert logged(app, "out of memory") and logged(app, "checkpoint saved to")
        assert app.is_running
        await pilot.press("q")
    assert (tmp_path / "run" / "checkpoints" / "last.pt").exists()


async def test_sigterm_leaves_with_143_and_the_run_trains_on_until_stopped(serve, tmp_path):
    engine = real_engine(tmp_path)
    app = TuiGanApp(serve(engine, for_app=True).viewer, run_name="run")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.query_one(StatusPanel).step > 1, what="steps")
        app.leave_on_signal(signal.SIGTERM)
        await wait_until(pilot, lambda: app.engine_done.is_set(), what="done")
    assert app.return_code == 128 + signal.SIGTERM and app.detached
    assert engine.control.stop_reason is None  # the run goes on
    engine.control.stop("quit")  # its service stops it, saving
    wait(lambda: (tmp_path / "run" / "checkpoints" / "last.pt").exists(), what="last.pt")


async def test_quit_while_loading_still_exits_cleanly(attached_app, tmp_path):
    app = real_app(attached_app, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await quit_app(pilot, app)
    assert app.return_code == 0


class BurstEngine(ScriptedEngine):
    """Sends a burst of progress events (each with a history row) whenever asked to."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.bursts: queue.Queue[int] = queue.Queue()

    def run(self):
        inner = super().run()
        for event in inner:
            yield event
            if isinstance(event, ev.Progress):
                break
        while self.control.stop_reason is None:
            try:
                first = self.bursts.get(timeout=0.05)
            except queue.Empty:
                continue
            for i in range(10):
                step = first + i
                yield ev.Progress(
                    step=step, epoch=0, epoch_step=step, steps_per_epoch=156, total_steps=1560,
                    loss_d=0.5, loss_g=2.0, d_x=0.01 * i, d_g_z1=0.3, d_g_z2=0.2, images_per_sec=400.0,
                    eta_s=10.0, elapsed_s=1.0, lr_g=2e-4, lr_d=2e-4,
                    row=HistoryRow(step, 0, 0.5, 2.0, 0.7, 0.3, 0.2, 2e-4, 2e-4, 400.0, 1.0),
                )
        yield from inner


async def test_progress_is_throttled_but_nothing_is_lost(attached_app):

    engine = BurstEngine()
    app = attached_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.state is RunState.TRAINING, what="training")
        chart, status = app.query_one(LossChart), app.query_one(StatusPanel)
        rows_before = len(chart.steps)
        await pilot.pause(PROGRESS_REDRAW_S)
        engine.bursts.put(5000)
        await wait_until(pilot, lambda: len(chart.steps) == rows_before + 10, what="every row in the chart")
        # ten events arrived at once: at most one redraw now, and the newest one shown soon after
        await wait_until(pilot, lambda: status.step == 5009, timeout=PROGRESS_REDRAW_S + 2, what="newest step")
        assert app.query_one("#gauge-d_x", Gauge).value == 0.09
        await quit_app(pilot, app)


async def test_events_reach_the_main_screen_while_a_dialog_is_open(attached_app):
    from tui_gan.tui.screens.learning_rate import LearningRateDialog

    engine = BurstEngine()
    app = attached_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.state is RunState.TRAINING, what="training")
        chart, status = app.query_one(LossChart), app.query_one(StatusPanel)
        rows_before = len(chart.steps)
        await open_screen(pilot, app, "l", LearningRateDialog)
        engine.bursts.put(7000)
        await wait_until(pilot, lambda: status.step == 7009, what="progress drawn behind the dialog")
        assert len(chart.steps) == rows_before + 10
        assert isinstance(app.screen, LearningRateDialog)
        await pilot.press("escape")
        await quit_app(pilot, app)


async def test_v_switches_the_samples_between_the_average_and_the_live_generator(attached_app, tmp_path):
    app = real_app(attached_app, tmp_path, ema=True)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(SamplesView)
        await wait_until(pilot, lambda: view.border_title == "Samples (EMA of G)", what="average")
        await press(pilot, "v")
        await wait_until(pilot, lambda: view.border_title == "Samples (live G)", what="live")
        assert app.training_screen.view.samples.generator == "live"
        await press(pilot, "v")
        await wait_until(pilot, lambda: view.border_title == "Samples (EMA of G)", what="back")
        await quit_app(pilot, app)
    assert "generator_ema" in torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)


async def test_v_without_ema_says_how_to_get_an_average(attached_app, tmp_path):
    app = real_app(attached_app, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.state is RunState.TRAINING, what="training")
        await press(pilot, "v")
        await wait_until(pilot, lambda: any("--ema" in n.message for n in app._notifications), what="the note")
        assert app.query_one(SamplesView).border_title == "Samples (fixed noise)"
        await quit_app(pilot, app)
