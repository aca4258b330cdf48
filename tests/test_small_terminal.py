"""The app at 80x24, as a laptop terminal opens, and smaller: every key of the help can be
read, and the status panel's lines end without cutting words."""

from __future__ import annotations

import dataclasses

import pytest

from tui_gan.core import events as ev
from tui_gan.core.report import GIB
from tui_gan.tui.keys import help_rows
from tui_gan.tui.screens.help import PALETTE, HelpScreen
from tui_gan.tui.state import RunState
from tui_gan.tui.widgets.status import StatusPanel, path_tail, wrap_parts

from .app_support import ScriptedEngine, open_screen, quit_app, visible_text, wait_until

#: Each row of the help as it reads on screen: the key, then its description.
HELP_ROWS = {f"{key} {description}" for key, description in help_rows()} | {f"ctrl+p {PALETTE}"}


def help_rows_shown(app) -> set[str]:
    text = " ".join(visible_text(app.screen))
    return {row for row in HELP_ROWS if row in text}


async def open_help(pilot, app) -> None:
    await wait_until(pilot, lambda: app.state is RunState.TRAINING, what="training")
    await open_screen(pilot, app, "question_mark", HelpScreen)
    await pilot.pause()


async def test_every_key_of_the_help_shows_at_once_at_80x24(attached_app):
    app = attached_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_help(pilot, app)
        assert help_rows_shown(app) == HELP_ROWS
        assert "New learning rates wait for the next epoch" in " ".join(visible_text(app.screen))  # the note too
        await pilot.press("escape")
        await quit_app(pilot, app)


async def test_down_scrolls_the_help_to_every_key_on_a_smaller_terminal(attached_app):
    app = attached_app()
    async with app.run_test(size=(80, 14)) as pilot:
        await open_help(pilot, app)
        seen = help_rows_shown(app)
        assert seen != HELP_ROWS  # too few rows: the test is of scrolling
        for _ in range(len(HELP_ROWS)):
            await pilot.press("down")
            await pilot.pause()
            seen |= help_rows_shown(app)
        assert seen == HELP_ROWS
        await pilot.press("escape")
        await quit_app(pilot, app)


class EngineOn(ScriptedEngine):
    """The scripted run on another device (and its GPU's reading, on CUDA)."""

    def __init__(self, device: str, precision: str, gpu: bool):
        super().__init__()
        self.device, self.precision, self.gpu = device, precision, gpu

    def run(self):
        for event in super().run():
            if isinstance(event, ev.Started):
                event = dataclasses.replace(event, device=self.device, precision=self.precision)
            yield event
            if isinstance(event, ev.Progress) and self.gpu:
                yield ev.DeviceStatus("NVIDIA H100 80GB HBM3", int(41.2 * GIB), int(79.6 * GIB), 38 * GIB, 97.0)


def status_lines(app) -> list[str]:
    panel = app.query_one(StatusPanel)
    return [panel.render_line(y).text.rstrip() for y in range(panel.size.height)]


@pytest.mark.parametrize("device, precision, gpu", [
    ("cpu × 2 processes (gloo)", "fp32", False),
    ("cuda:0 (NVIDIA H100 80GB HBM3) × 2 processes (NCCL)", "bf16", True),
    ("cuda:0 (NVIDIA GeForce RTX 4090 Laptop GPU)", "bf16", True),
], ids=["cpu-gloo", "h100-nccl", "laptop-gpu"])
async def test_the_status_panel_wraps_rather_than_cuts_at_80x24(attached_app, device, precision, gpu):
    app = attached_app(EngineOn(device, precision, gpu))
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one(StatusPanel)
        await wait_until(pilot, lambda: panel.view.started is not None and (panel.view.device_status or not gpu),
                         what="the device")
        await pilot.pause(0.2)
        lines = status_lines(app)
        assert not any(line.endswith("…") for line in lines), "\n".join(lines)
        words = " ".join(" ".join(lines).split())
        for shown in (device, precision, "auto-pause off", "ETA 1m35s", "lr G 0.0002 D 0.0002"):
            assert shown in words, "\n".join(lines)
        assert lines[-1].strip() == panel.view.started.run_dir  # the last line: nothing below it cut off
        await quit_app(pilot, app)


async def test_the_status_panel_follows_the_terminal_made_taller_and_shorter(attached_app):
    app = attached_app(EngineOn("cuda:0 (NVIDIA H100 80GB HBM3) × 2 processes (NCCL)", "bf16", True))
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one(StatusPanel)
        await wait_until(pilot, lambda: panel.view.device_status is not None, what="the GPU's reading")
        await pilot.pause(0.2)
        assert "ETA 1m35s" in status_lines(app)  # compact: no labels
        await pilot.resize_terminal(80, 40)  # the same width: only the screen's class changes
        await wait_until(pilot, lambda: "ETA    1m35s" in status_lines(app), what="the labelled layout")
        assert status_lines(app)[-1].strip() == "run    runs/demo"
        await pilot.resize_terminal(80, 24)
        await wait_until(pilot, lambda: "ETA 1m35s" in status_lines(app), what="the compact layout")
        await quit_app(pilot, app)


def test_lines_break_between_parts_then_between_words_and_a_path_keeps_its_end():
    def plain(lines):
        return [line.plain for line in lines]

    assert plain(wrap_parts(["1,200/1,560", "412 img/s", "ETA 1m35s"], 28)) == ["1,200/1,560 · 412 img/s", "ETA 1m35s"]
    assert plain(wrap_parts(["cuda:0 (NVIDIA GeForce RTX 4090 Laptop GPU)", "bf16"], 28)) == [
        "cuda:0 (NVIDIA GeForce RTX", "4090 Laptop GPU) · bf16"]
    assert plain(wrap_parts(["G 0.0005  D 0.0005", "→ G 0.001  D 0.001 at epoch end"], 40, joiner="  ")) == [
        "G 0.0005  D 0.0005", "→ G 0.001  D 0.001 at epoch end"]
    assert path_tail("/home/someone/projects/tui-gan/runs/2026-05-01_12-00-00", 28) == "…/runs/2026-05-01_12-00-00"
    assert path_tail("runs/demo", 28) == "runs/demo"
