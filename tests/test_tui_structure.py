"""The app's parts fit together: every event has a handler, every key an action, and the
bindings, help rows and palette commands are all the key table's; the samples browser; the
import and size rules of tui/."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import tui_gan.tui
from tui_gan.core import events as ev
from tui_gan.core.report import Report
from tui_gan.tui.app import TuiGanApp
from tui_gan.tui.keys import KEYS, Key, Scope, bindings, help_rows, palette_keys
from tui_gan.tui.sample_history import SampleHistory
from tui_gan.tui.state import RunState
from tui_gan.tui.training_screen import TONE_STYLES, TrainingScreen
from tui_gan.tui.widgets.status import STATE_STYLES

from .app_support import quit_app, wait_until

EVENT_TYPES = [cls for _, cls in inspect.getmembers(ev, inspect.isclass)
               if cls.__module__ == ev.__name__ and dataclasses.is_dataclass(cls)]


def test_every_event_class_has_a_screen_handler_and_report_lines():
    assert len(EVENT_TYPES) >= 16
    for cls in EVENT_TYPES:
        assert TrainingScreen.handles(cls), cls.__name__
        assert Report().handles(cls), cls.__name__
    assert not TrainingScreen.handles(int)


def test_every_key_has_an_action_method_on_its_scopes_class():
    owners = {Scope.APP: TuiGanApp, Scope.TRAINING: TrainingScreen}
    for key in KEYS:
        assert callable(getattr(owners[key.scope], key.method, None)), (key.shown, key.method)


def _binding_fields(binding_list) -> list[tuple]:
    return [(b.key, b.action, b.description, b.show, b.priority) for b in binding_list]


def _table_fields(scope: Scope) -> list[tuple]:
    return [(k.name, k.action, k.label, k.footer, k.priority) for k in KEYS if k.scope is scope]


def test_both_binding_lists_are_the_key_table():
    assert _binding_fields(TuiGanApp.BINDINGS) == _table_fields(Scope.APP)
    assert _binding_fields(TrainingScreen.BINDINGS) == _table_fields(Scope.TRAINING)
    assert _binding_fields(bindings(Scope.APP)) == _table_fields(Scope.APP)
    # quitting works from any screen: ctrl+c and ctrl+q come before every screen's keys
    assert {k.name for k in KEYS if k.priority} == {"ctrl+c", "ctrl+q"}
    assert all(k.scope is Scope.APP for k in KEYS if k.action == "quit_safely")


def test_the_help_screen_lists_the_twenty_keys_in_table_order():
    rows = help_rows()
    assert [key for key, _ in rows] == ["space", "s", "e", "l", "a", "y", "c", "o", "x", "[", "]", "v", "k", "g", "i",
                                        "m", "t", "?", "d", "q"]
    assert rows[0] == ("space", "Pause / resume") and rows[-1] == ("q", "Stop the training (saving last.pt) and quit")
    assert rows == [(k.shown, k.description) for k in KEYS if k.in_help]


def test_footer_keys_are_the_screens_in_table_order_then_the_apps():
    shown = [k.shown for k in KEYS if k.footer]
    assert shown == ["space", "s", "e", "l", "a", "?", "d", "q"]
    # the footer lists the screen's bindings before the App's: the App's keys come last
    scopes = [k.scope for k in KEYS if k.footer]
    assert scopes == sorted(scopes, key=lambda s: s is Scope.APP)


def test_key_method_names_strip_arguments():
    assert Key("[", "left_square_bracket", "browse(-1)", "", "").method == "action_browse"


async def test_palette_commands_are_the_key_table_and_run_on_the_training_screen(attached_app):
    app = attached_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.state is RunState.TRAINING, what="training")
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        for key in palette_keys():
            assert commands[key.description].help == f"key: {key.shown}"
        assert "This help" not in commands  # help is left out of the palette
        chart = app.training_screen.panels.chart
        assert not chart.log_scale
        await commands["Loss chart: log scale (on/off)"].callback()
        assert chart.log_scale
        await quit_app(pilot, app)


async def test_the_event_log_takes_its_lines_from_the_report_with_a_style_per_tone(attached_app):
    app = attached_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.state is RunState.TRAINING, what="training")
        log = app.training_screen.event_log

        def squeezed() -> str:  # the log's text, wherever it wrapped
            return "".join("".join(line.text for line in log.lines).split())

        await pilot.press("s")
        await wait_until(pilot, lambda: "snapshotsaved" in squeezed(), what="snapshot")
        expected = Report().snapshot_saved(ev.SnapshotSaved(1200, "runs/demo/checkpoints/snapshot-1200.pt",
                                                            "runs/demo/samples/snapshot-1200.png"))[0]
        assert "".join(expected.text.split()) in squeezed()
        first = next(line for line in log.lines if line.text.startswith("snapshot saved"))
        assert any(seg.style and seg.style.color and seg.style.color.name == TONE_STYLES[expected.tone]
                   for seg in first)
        assert "epoch8/10step1200" not in squeezed()  # progress (Tone.STATUS) stays out of the log
        await quit_app(pilot, app)


def test_every_state_has_a_style():
    assert set(STATE_STYLES) == set(RunState)
    assert RunState.TRAINING.value == "training" and RunState.LOADING.value == "loading…"
    assert {s for s in RunState if s.takes_requests} == {RunState.TRAINING, RunState.PAUSING, RunState.PAUSED}


def test_sample_history_browses_the_epochs_of_the_view_then_returns_to_live():
    view = types.SimpleNamespace(samples=None, progression=[])  # what it reads of a RunView
    history = SampleHistory(view)
    live = np.zeros((1, 3, 4, 4), np.uint8)
    assert history.browse(-1) is None  # no epochs yet
    view.samples = ev.Samples(7, 0, live)
    assert history.latest().subtitle == "step 7"
    view.progression += [(1, "one"), (2, "two")]
    assert history.browse(1) is None  # already live
    shown = history.browse(-1)
    assert (shown.images, shown.subtitle) == ("two", "epoch 2 · 2/2 · ] live")
    view.samples = ev.Samples(8, 0, live)
    assert history.latest() is None  # browsing: the new live samples wait
    assert history.browse(-5).subtitle.startswith("epoch 1 · 1/2")  # stops at the first
    assert history.browse(1).images == "two"
    assert history.browse(1).subtitle == "step 8"  # past the newest: live again
    assert history.browsing is None


def test_importing_the_app_imports_no_torch_and_no_engine():
    code = ("import sys, tui_gan.tui.app, tui_gan.tui.training_screen, tui_gan.tui.keys; "
            "print('\\n'.join(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = set(out.stdout.split())
    assert "tui_gan.tui.app" in modules
    assert "torch" not in modules
    assert not any(m.startswith("tui_gan.engine") for m in modules)


TUI_SOURCES = sorted(Path(tui_gan.tui.__file__).parent.rglob("*.py"))


@pytest.mark.parametrize("path", TUI_SOURCES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_tui_modules_and_classes_stay_small(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 400
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef):
            assert node.end_lineno - node.lineno + 1 <= 300, node.name


def own_lines(cls: type) -> int:
    """A class's lines with those of every tui_gan class it inherits from (its mixins): what a
    reader has to hold to know what one of its methods may touch."""
    return sum(len(inspect.getsourcelines(base)[0]) for base in cls.__mro__ if base.__module__.startswith("tui_gan."))


@pytest.mark.parametrize("path", TUI_SOURCES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_tui_classes_stay_small_counting_what_they_inherit(path):
    name = ".".join(path.relative_to(Path(tui_gan.__file__).parents[1]).with_suffix("").parts)
    module = importlib.import_module(name.removesuffix(".__init__"))
    for cls in vars(module).values():
        if inspect.isclass(cls) and cls.__module__ == module.__name__:
            assert own_lines(cls) <= 300, cls.__name__


async def test_ctrl_q_quits_from_over_a_dialog_and_q_closes_the_help_first(attached_app):
    from tui_gan.tui.screens.help import HelpScreen

    from .app_support import open_screen

    app = attached_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.state is RunState.TRAINING, what="training")
        await open_screen(pilot, app, "question_mark", HelpScreen)
        await pilot.press("q")  # the help screen's own q closes it; the App's q waits below it
        await wait_until(pilot, lambda: not isinstance(app.screen, HelpScreen), what="help closed")
        assert app.state is RunState.TRAINING
        await open_screen(pilot, app, "question_mark", HelpScreen)
        await pilot.press("ctrl+q")  # a priority binding: it passes the dialog
        await wait_until(pilot, lambda: app.engine_done.is_set(), what="the engine to stop")
    assert app.return_code == 0


async def test_a_pause_still_queued_when_q_is_pressed_is_not_logged(attached_app):
    app = attached_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.state is RunState.TRAINING, what="training")
        screen = app.training_screen
        before = len(screen.event_log.lines)
        screen.set_state(RunState.STOPPING)
        screen.show_event(ev.Paused(1200))
        await pilot.pause(0.1)
        assert len(screen.event_log.lines) == before and screen.state is RunState.STOPPING
        screen.show_event(ev.Resumed(1200))  # a resume is still logged
        await wait_until(pilot, lambda: len(screen.event_log.lines) > before, what="the resumed line")
        await quit_app(pilot, app)
