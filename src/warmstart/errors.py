"""The one exception type that means "the user gave us something we cannot use".

The CLI turns a ``UserError`` into a single line on stderr and exit code 2; anything else is a bug
and keeps its traceback.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(ValueError):
    """Bad input: the message names the problem and the fix, on one line."""


def closest(name: str, choices: Iterable[str]) -> str:
    """A " (did you mean 'x'?)" hint, or an empty string when nothing is close."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def note(message: str) -> None:
    """Tell the user something they should know but that is not an error (one line on stderr)."""
    import sys

    print(f"warmstart: note: {message}", file=sys.stderr)
