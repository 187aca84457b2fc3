"""One exception type for bad user input, so the CLI can print it without a traceback."""


class BenchError(Exception):
    """A problem with a user's file or setting; the message names the file and the problem."""
