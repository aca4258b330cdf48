"""Messages the app's worker posts as it follows the run. Small and immutable; no widget access."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from ..core.contract import RunControl, latest_value_key


class EngineEvent(Message):
    """One event of the run's stream."""

    def __init__(self, event: Any) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        """A newer report of the same 'latest value' kind supersedes this one if this one is
        still queued (core/contract.latest_value_key)."""
        if not isinstance(message, EngineEvent):
            return False
        key = latest_value_key(self.event)
        return key is not None and key == latest_value_key(message.event)


class EngineReady(Message):
    """The app has reached the run: requests go to ``run_control`` from now on."""

    def __init__(self, control: RunControl) -> None:
        super().__init__()
        self.run_control = control  # not "control": a Message has a property of that name


class EngineFailed(Message):
    """The run could not be reached or started: bad input (a one-line message) or an unexpected error."""

    def __init__(self, message: str, user_error: bool) -> None:
        super().__init__()
        self.message = message
        self.user_error = user_error


class EngineDone(Message):
    """The worker has returned: the run's stream is over."""
