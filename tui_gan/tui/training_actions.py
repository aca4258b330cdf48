"""The training screen's actions: what each of its keys (keys.py) does.

A mixin of TrainingScreen (training_screen.py), which has the widgets and the state these
methods use: ``control``, ``state``, ``status_panel``, ``chart``, ``samples``, ``run_dir``.
Requests go to the run's control (the engine's, or a service's over its socket); what they
change comes back as events, drawn by the screen's handlers.
"""

from __future__ import annotations

from typing import Any

from textual import work

from ..core.control import Control
from ..core.errors import UserError
from ..core.rundir import RunDir
from .keys import help_rows
from .screens.help import HelpScreen
from .screens.learning_rate import LearningRateDialog, LearningRates
from .state import RunState


class TrainingActions:
    """``action_<name>`` for each key of the training screen's scope in keys.KEYS."""

    control: Control | None
    state: RunState
    status_panel: Any
    chart: Any
    samples: Any
    run_dir: str
    has_average: bool
    shown_generator: str | None

    def _live_control(self, what: str) -> Control | None:
        """The engine's control if it takes requests now; else None, and a note saying why."""
        if self.control is None or not self.state.takes_requests:
            self.notify(f"cannot {what} now: training is {self.state.value.rstrip('…')}", severity="warning")
            return None
        return self.control

    def action_toggle_pause(self) -> None:
        if self.control is None or not self.state.takes_requests:
            self.app.bell()
            return
        # toggle_pause has asked for the pause or the resume already
        self.set_state(RunState.PAUSING if self.control.toggle_pause() else RunState.TRAINING)

    def _one_shot(self, what: str, request: str, noted: str) -> None:
        """Ask for a one-shot request (``request``: a Control method) if the run takes it."""
        if control := self._live_control(what):
            getattr(control, request)()
            self.log_line(f"{noted} requested…", "dim")

    def action_snapshot(self) -> None:
        self._one_shot("snapshot", "snapshot", "snapshot")

    def action_export(self) -> None:
        self._one_shot("export", "export", "export")

    def action_toggle_average(self) -> None:
        control = self._live_control("switch the samples")  # not before the run has started
        if control is not None and not self.has_average:
            self.notify("this run keeps no average of the generator: start (or resume) it with --ema",
                        severity="warning")
        elif control is not None:
            control.show_average(self.shown_generator != "average")

    def action_learning_rate(self) -> None:
        control = self._live_control("change the learning rate")
        if control is None:
            return
        status = self.status_panel
        lr_g, lr_d = status.pending or (status.lr_g, status.lr_d)

        def apply(result: LearningRates | None) -> None:
            if result is not None:
                control.set_lr(result.lr_g, result.lr_d, now=result.now)

        self.app.push_screen(LearningRateDialog(lr_g, lr_d), apply)

    def action_toggle_auto_pause(self) -> None:
        """The engine answers with AutoPauseSet, which every viewer shows."""
        if control := self._live_control("change auto-pause"):
            control.set_pause_at_epoch_end(not self.status_panel.auto_pause)

    def action_toggle_log_scale(self) -> None:
        self.chart.set_log_scale(not self.chart.log_scale)

    def action_toggle_chart(self) -> None:
        chart = self.chart
        chart.set_show_quality(not chart.show_quality)
        chart.border_title = "Quality" if chart.show_quality else "Losses"

    def action_browse(self, delta: int) -> None:
        if not self.samples.epochs:
            self.notify("no epoch has ended yet: the samples of each epoch's end are kept here", severity="warning")
            return
        self._draw_samples(self.samples.browse(delta))

    def action_gif(self) -> None:
        if not self.run_dir:
            self.notify("no run directory yet", severity="warning")
            return
        self.log_line("writing the progression GIF…", "dim")
        self._write_gif(self.run_dir)

    @work(thread=True, exclusive=True, group="gif", exit_on_error=False)
    def _write_gif(self, run_dir: str) -> None:
        from ..pictures.progression import make_gif  # Pillow: loaded when first needed

        try:
            path = make_gif(run_dir)
            epochs = len(RunDir(run_dir).epoch_grids())
            self.app.call_from_thread(self.log_line, f"progression GIF ({epochs} epochs): {path}", "green")
        except UserError as exc:
            self.app.call_from_thread(self.log_line, f"no GIF: {exc}", "yellow")

    def action_interpolate(self) -> None:
        self._one_shot("render the latent walks", "interpolate", "latent walks")

    def action_measure(self) -> None:
        self._one_shot("measure the quality", "measure", "quality measurement")

    def action_toggle_theme(self) -> None:
        self.app.theme = "textual-light" if self.app.theme == "textual-dark" else "textual-dark"

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(help_rows()))
