"""The one exception type that means "the user asked for something we cannot do".

Library code raises :class:`UserInputError` with a message a person can act on (name the file,
the field, the value and what is allowed). ``cli.py`` turns it into one line on stderr and exit
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserInputError(ValueError):
    """Bad input from the user: unknown model, malformed table, missing file, bad option value."""
