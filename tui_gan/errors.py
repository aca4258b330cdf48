"""Errors the user can fix. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input: a missing path, an invalid number, an unavailable device, a corrupt file.

    The message is one line that says what is wrong and what to do about it.
    """

    exit_code = 2
