"""Every key of the app in one table: the bindings of the App and of the training screen,
the help screen's rows and the command palette's commands are all made from it, so they
cannot disagree.

Table order is the order of the help screen and of the footer. Textual's footer lists the
focused screen's bindings before the App's, so the App's keys (quitting) come last in the
table too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from textual.binding import Binding


class Scope(enum.Enum):
    """Whose binding a key is, and so which class has its ``action_...`` method."""

    APP = "app"
    """The App: quitting, which must work from every screen."""
    TRAINING = "training"
    """The training screen: keys about the run and its widgets. A modal screen on top (a
    dialog) hides them: they act on what the dialog covers."""


@dataclass(frozen=True)
class Key:
    shown: str
    """The key as the help screen and the palette show it ("space", "[", "?")."""
    name: str
    """Textual's name of the key ("left_square_bracket", "question_mark")."""
    action: str
    """The action, perhaps with arguments ("browse(-1)")."""
    description: str
    """The help screen's row and the palette's command."""
    label: str
    """The footer's short label."""
    footer: bool = False
    scope: Scope = Scope.TRAINING
    priority: bool = False
    """Checked before any screen's bindings (ctrl+c, ctrl+q: quitting from anywhere)."""
    in_help: bool = True
    in_palette: bool = True

    @property
    def method(self) -> str:
        """The name of the method that runs the action ("action_browse")."""
        return "action_" + self.action.partition("(")[0]


QUIT = "Stop the training (saving last.pt) and quit"

# Descriptions stay within 67 characters: each is one line of the help screen at 80x24
# (its scroll bar showing), so every key shows at once there.

KEYS: tuple[Key, ...] = (
    Key("space", "space", "toggle_pause", "Pause / resume", "Pause", footer=True),
    Key("s", "s", "snapshot", "Snapshot: full checkpoint + sample PNG", "Snapshot", footer=True),
    Key("e", "e", "export", "Export the samples as a PNG grid", "Export", footer=True),
    Key("l", "l", "learning_rate", "Change the learning rates", "LR", footer=True),
    Key("a", "a", "toggle_auto_pause", "Pause at every epoch end (on/off)", "Auto-pause", footer=True),
    Key("y", "y", "toggle_log_scale", "Loss chart: log scale (on/off)", "Log"),
    Key("c", "c", "toggle_chart", "Chart: losses / quality (SWD, diversity)", "Chart"),
    Key("o", "o", "compare", "Compare: draw another run's losses and SWD beside this run's", "Compare"),
    Key("x", "x", "toggle_alignment", "Chart: x-axis by step / by images seen (runs of other batch sizes)",
        "X-axis"),
    Key("[", "left_square_bracket", "browse(-1)", "Samples: the previous epoch's end", "Earlier"),
    Key("]", "right_square_bracket", "browse(1)", "Samples: the next epoch's end, then live", "Later"),
    Key("v", "v", "toggle_average", "Samples: the generator's moving average (--ema) / the live one", "EMA"),
    Key("k", "k", "show_classes(1)", "Samples: the next classes' rows (--conditional); K: back", "Classes"),
    # one help row for both, as the help shows every key at once at 80x24
    Key("K", "K", "show_classes(-1)", "Samples: the previous classes' rows (--conditional)", "Classes back",
        in_help=False),
    Key("g", "g", "gif", "Write the progression GIF of the epoch-end samples", "GIF"),
    Key("i", "i", "interpolate", "Latent walks: interpolation between fixed latent vectors", "Walks"),
    Key("m", "m", "measure", "Measure the quality now (it is measured at every epoch end)", "Measure"),
    Key("t", "t", "toggle_theme", "Dark / light theme", "Theme"),
    # not in the palette: the palette is where the help would send you
    Key("?", "question_mark", "help", "This help", "Help", footer=True, in_palette=False),
    Key("d", "d", "detach", "Detach: close this window, the training goes on (tui-gan attach)", "Detach",
        footer=True, scope=Scope.APP),
    Key("q", "q", "quit_safely", QUIT, "Quit", footer=True, scope=Scope.APP),
    # the terminal's habits: one quit in the help and the palette is enough
    Key("ctrl+c", "ctrl+c", "quit_safely", QUIT, "Quit", scope=Scope.APP, priority=True, in_help=False,
        in_palette=False),
    Key("ctrl+q", "ctrl+q", "quit_safely", QUIT, "Quit", scope=Scope.APP, priority=True, in_help=False,
        in_palette=False),
)


def bindings(scope: Scope) -> list[Binding]:
    """The BINDINGS of the class that ``scope`` names."""
    return [Binding(k.name, k.action, k.label, show=k.footer, priority=k.priority) for k in KEYS if k.scope is scope]


def help_rows() -> list[tuple[str, str]]:
    """(key, description) of each row of the help screen."""
    return [(k.shown, k.description) for k in KEYS if k.in_help]


def palette_keys() -> list[Key]:
    """The keys whose actions the command palette offers."""
    return [k for k in KEYS if k.in_palette]
