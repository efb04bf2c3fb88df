"""The one error type the CLI shows to people: a sentence saying what to do, no traceback."""


class UserError(Exception):
    """Something the user can fix; ``str(error)`` is the one line shown."""
