"""Errors the suite raises on bad input, and how the CLI reports them.

Every problem with user input (a malformed annotation file, a result entry of the wrong length, a
frame missing on disk) is an :class:`InputError` that names the file, the entry and what is wrong.
The console script turns it into a readable message on stderr and exit status 2; it never shows a
bare traceback for input problems.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EXIT_FAILED", "EXIT_INPUT", "InputError", "Problem", "TrainingError", "UsageError"]

#: Exit status for usage and input errors (argparse uses 2 as well).
EXIT_INPUT = 2
#: Exit status of a run that failed on good input (a training that diverged).
EXIT_FAILED = 1


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input.

    Attributes:
        file: The file (or directory) the problem is in, or ``None`` for in-memory data.
        entry: Which entry, e.g. ``"videos[3] (id 17)"`` or ``"annotations[0] (id 5)"``.
        message: What is wrong, in words a user can act on.
    """

    file: str | None
    entry: str | None
    message: str

    def __str__(self) -> str:
        where = ": ".join(p for p in (self.file, self.entry) if p)
        return f"{where}: {self.message}" if where else self.message


class InputError(ValueError):
    """Bad input: one or more :class:`Problem` s.

    Args:
        problems: The problems found (at least one). A single string is accepted as a shortcut.
        file: Default file for string problems.
        entry: Default entry for string problems.
    """

    #: How many problems ``str()`` lists before summarising the rest.
    MAX_SHOWN = 20

    def __init__(
        self,
        problems: Iterable[Problem] | str,
        *,
        file: str | Path | None = None,
        entry: str | None = None,
    ) -> None:
        if isinstance(problems, str):
            problems = [Problem(str(file) if file is not None else None, entry, problems)]
        self.problems: tuple[Problem, ...] = tuple(problems)
        if not self.problems:
            raise ValueError("InputError needs at least one problem")
        super().__init__(self._render())

    def _render(self) -> str:
        shown = [str(p) for p in self.problems[: self.MAX_SHOWN]]
        rest = len(self.problems) - len(shown)
        if rest > 0:
            shown.append(f"... and {rest} more problem(s)")
        return "\n".join(shown)


class UsageError(ValueError):
    """A command line that cannot be acted on (conflicting or missing options)."""


class TrainingError(RuntimeError):
    """A training that cannot go on (a non-finite loss or gradient); the message says at which
    step, what was saved and what to try."""
