"""The driver of an app in a browser tab (``tui-gan serve`` names it in TEXTUAL_DRIVER).

Textual's web driver talks to the server through stdin and stdout. When the server dies
without a word (``kill -9``, a crash), stdin ends, but the web driver leaves the app running
with no one to draw for: an orphan process per tab that was open. This one leaves instead.
"""

from __future__ import annotations

import os
import threading

from textual import messages
from textual.drivers.web_driver import WebDriver

#: Seconds an orphaned app has to leave on its own before its process ends regardless (its
#: output has nowhere to go, so its exit may fail on a broken pipe).
ORPHAN_EXIT_S = 3.0


class ServedDriver(WebDriver):
    def run_input_thread(self) -> None:
        super().run_input_thread()
        if self.exit_event.is_set():
            return  # the app is leaving: stdin was closed by its own exit
        # the server is gone: leave (with the run in a service, leaving hangs up, nothing more)
        self._app.post_message(messages.ExitApp())
        watchdog = threading.Timer(ORPHAN_EXIT_S, os._exit, args=(0,))
        watchdog.daemon = True
        watchdog.start()
