"""How an export names what is wrong with its inputs: every problem on its own line, saying what
and where, with the nearest valid name when a name is mistyped."""

from __future__ import annotations

import difflib
from collections.abc import Sequence


class ExportProblems(ValueError):
    """Everything wrong with an export's inputs, one line each (what, where)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def nearest(word: str, choices: Sequence[str]) -> str:
    """' (did you mean 'x'?)' when a choice is close to ``word``, else ''."""
    by_lower = {str(c).lower(): str(c) for c in choices}
    match = difflib.get_close_matches(str(word).lower(), list(by_lower), n=1, cutoff=0.5)
    return f" (did you mean {by_lower[match[0]]!r}?)" if match else ""


def first_line(exc: BaseException) -> str:
    """An exception's first line (at most 300 characters): libraries' messages can run to pages."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
