"""Errors the user can fix. The CLI prints them as one line and exits with code 2."""

import argparse


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


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are UserErrors: one line, exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see {self.prog} --help)")
