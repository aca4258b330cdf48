"""Messages the engine worker posts to the app. Small and immutable; no widget access."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from ..core.contract import latest_value_key
from ..core.control import Control


class EngineEvent(Message):
    """One event from the engine's stream."""

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
    """The engine exists (torch imported, config resolved); its control surface is live."""

    def __init__(self, control: Control) -> None:
        super().__init__()
        self.engine_control = control


class EngineFailed(Message):
    """The engine could not start: bad input (a one-line message) or an unexpected error."""

    def __init__(self, message: str, user_error: bool) -> None:
        super().__init__()
        self.message = message
        self.user_error = user_error


class EngineDone(Message):
    """The worker has returned: the engine's stream is over."""
