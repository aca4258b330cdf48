"""Errors the user can fix. The CLI prints them as one line and exits with code 2."""

import argparse
import sys
from collections.abc import Callable


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


def one_line_errors(command: Callable[[], int]) -> int:
    """Run a command and return its exit code; a UserError is printed as its one line
    (``tui-gan: error: ...``, the prefix the app looks for in a service's train.log) and
    gives exit code 2, an interrupt before the run catches it gives 130."""
    try:
        return command()
    except UserError as exc:
        print(f"tui-gan: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tui-gan: interrupted", file=sys.stderr)
        return 130
