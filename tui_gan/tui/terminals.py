"""What the app knows of terminals by name (the probe's XTVERSION answer) and of tmux by its
own report (``tmux display``): the facts the graphics decision needs that no query answers.
Standard library only: it runs before Textual starts.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

#: kitty draws the unicode placeholders the app needs from this version on (0.28.0's
#: changelog: "Graphics protocol: Add support for Unicode placeholders"); older ones answer
#: the graphics query all the same and show the placeholders as text.
KITTY_PLACEHOLDERS = (0, 28)
#: Terminals that name themselves in XTVERSION and draw 24-bit colour: XTerm since patch
#: 331 (direct colour), and those whose every release has it.
_TRUECOLOR_NAMES = ("kitty", "ghostty", "wezterm", "foot", "iterm2", "konsole", "mlterm", "contour", "rio",
                    "alacritty", "windows terminal", "mintty")
_XTERM_DIRECT_COLOUR = 331
#: Seconds to wait for ``tmux display``: a local server answers in milliseconds.
TMUX_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class TerminalName:
    """A terminal as XTVERSION names it: ``kitty(0.26.5)``, ``XTerm(379)``, ``WezTerm 20240203-110809-5046fc22``."""

    name: str = ""
    version: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> TerminalName:
        match = re.match(r"\s*([A-Za-z][A-Za-z0-9 _-]*?)\s*[( ]v?([0-9][0-9.]*)", text or "")
        if not match:
            return cls(name=(text or "").strip().lower())
        version = tuple(int(part) for part in match.group(2).strip(".").split(".") if part)
        return cls(match.group(1).strip().lower(), version)

    def __str__(self) -> str:
        return f"{self.name} {'.'.join(map(str, self.version))}".strip()

    @property
    def truecolor(self) -> bool:
        if self.name == "xterm":
            return bool(self.version) and self.version[0] >= _XTERM_DIRECT_COLOUR
        return self.name in _TRUECOLOR_NAMES

    @property
    def kitty_placeholders(self) -> bool:
        """Draws kitty's unicode placeholders (kitty 0.28+, Ghostty); False where unknown."""
        if self.name == "kitty":
            return self.version[:2] >= KITTY_PLACEHOLDERS
        return self.name == "ghostty"

    @property
    def old_kitty(self) -> bool:
        return self.name == "kitty" and not self.kitty_placeholders


@dataclass(frozen=True)
class Tmux:
    """What tmux says of itself and of the client the app is seen in."""

    version: str = ""  # "3.3a"
    outer: TerminalName = TerminalName()  # the terminal tmux runs in (its client_termtype)
    outer_term: str = ""  # that terminal's TERM (client_termname), for terminal-features
    features: frozenset[str] = frozenset()  # client_termfeatures: RGB, sixel, ...
    passthrough: bool = False  # allow-passthrough is on (or all) for this pane

    @property
    def rgb(self) -> bool:
        return "RGB" in self.features

    @property
    def sixel(self) -> bool:
        """tmux itself draws Sixel here (3.4+, built with it, the outer terminal has it)."""
        return "sixel" in self.features


_TMUX_FORMAT = "#{version}\t#{client_termtype}\t#{client_termname}\t#{client_termfeatures}\t#{allow-passthrough}"


def ask_tmux(env: Mapping[str, str]) -> Tmux | None:
    """tmux's report for the pane the app runs in; None where tmux cannot be asked."""
    target = ["-t", env["TMUX_PANE"]] if env.get("TMUX_PANE") else []
    try:
        done = subprocess.run(["tmux", "display-message", "-p", *target, _TMUX_FORMAT], capture_output=True,
                              text=True, timeout=TMUX_TIMEOUT_S, env=dict(env), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    fields = done.stdout.rstrip("\n").split("\t")
    if done.returncode != 0 or len(fields) != 5:
        return None
    version, termtype, termname, features, passthrough = fields
    return Tmux(version, TerminalName.parse(termtype), termname,
                frozenset(f for f in features.split(",") if f), passthrough.strip() in ("1", "on", "all"))


def tmux_settings_for_kitty(tmux: Tmux) -> list[str]:
    """The tmux settings missing for kitty's placeholders to reach the terminal in 24-bit colour."""
    missing = [] if tmux.passthrough else ["set -g allow-passthrough on"]
    if not tmux.rgb:
        missing.append(f"set -as terminal-features ',{tmux.outer_term or 'xterm-kitty'}:RGB'")
    return missing
