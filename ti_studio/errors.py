"""The one exception type that means "the user's input is wrong", so front ends can show a line, not a traceback."""


class UserError(Exception):
    """Bad input that the user can fix (a missing folder, a bad name, an unreadable image).

    The CLI turns it into one line on stderr and exit code 2; the UI shows the message as-is. Anything else that
    escapes is a bug and keeps its traceback.
    """
