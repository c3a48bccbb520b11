"""The one error type the CLI turns into a one-line message and exit status 2."""


class HwgenError(Exception):
    """A user-facing problem: bad input, bad option, missing data. One line, no traceback."""
