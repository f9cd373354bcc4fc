"""The lab's one error base class: the CLI and the TUI show its message as it is, never a traceback."""


class LabError(Exception):
    """A problem the user can fix; the message says what and where."""
