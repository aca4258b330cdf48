"""The app at 80x24, as a laptop terminal opens, and smaller: every key of the help can be
read, and the status panel's lines end without cutting words."""

from __future__ import annotations

from tui_gan.tui.keys import help_rows
from tui_gan.tui.screens.help import PALETTE, HelpScreen
from tui_gan.tui.state import RunState

from .app_support import open_screen, quit_app, visible_text, wait_until

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
