"""Snapshot tests of the main screen (pytest-textual-snapshot) with a deterministic state.

Update after an intended change of the screen: pytest tests/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import pytest

from tui_gan.data.builtin import make_builtin
from tui_gan.tui.state import RunState
from tui_gan.tui.widgets.samples import SamplesView

from .app_support import ScriptedEngine, wait_until

SAMPLES = make_builtin(64, 32, seed=1)


def _app(attached_app, **options):
    return attached_app(ScriptedEngine(run_dir="runs/demo", samples=SAMPLES), run_name="demo", **options)


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])
def test_main_screen(snap_compare, attached_app, size):
    app = _app(attached_app)

    async def ready(pilot):
        await wait_until(pilot, lambda: app.state is RunState.TRAINING and app.query_one(SamplesView).shown > 0,
                         what="a deterministic training screen")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=ready)


def test_learning_rate_dialog(snap_compare, attached_app):
    app = _app(attached_app)

    async def open_dialog(pilot):
        await wait_until(pilot, lambda: app.state is RunState.TRAINING, what="training")
        await pilot.press("l")
        await pilot.pause(0.2)
        await pilot.press("x")  # an invalid value shows its message
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(120, 40), run_before=open_dialog)


def test_comparison_overlay(snap_compare, attached_app, tmp_path):
    """Another run's smoothed losses (dimmer, named in the legend) behind this run's, by images seen."""
    from tui_gan.core.comparison import ComparedRun

    from .test_compare_app import runs_folder

    compared = ComparedRun.open(runs_folder(tmp_path) / "baseline")
    app = _app(attached_app, compare=compared)

    async def aligned_by_images(pilot):
        await wait_until(pilot, lambda: app.state is RunState.TRAINING and app.query_one(SamplesView).shown > 0,
                         what="a deterministic training screen")
        await pilot.press("x")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(120, 40), run_before=aligned_by_images)
