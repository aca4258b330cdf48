"""Errors the user can fix. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input: a missing path, an invalid number, an unavailable device, a corrupt file.

    The message is one line that says what is wrong and what to do about it.
    """

    exit_code = 2


def first_line(exc: BaseException) -> str:
    """The first line of an exception's (or warning's) message, or its type's name when it
    has none: for the reason in a one-line message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
