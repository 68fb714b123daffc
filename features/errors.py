"""Errors that carry a message meant for the user (the CLI prints them without a stack trace)."""


class RecoupError(Exception):
    """A problem the user can fix: bad input, a missing model, a wrong option."""
