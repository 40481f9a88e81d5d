"""One exception family for the project, and the one message format it uses.

Every error a user can cause is a ``TrainflowError``: the CLI prints its message and exits with
its ``exit_code``; the flow's retry condition never retries one (retrying cannot fix bad input).
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable


class TrainflowError(Exception):
    """Base class for errors caused by the spec, the data or the environment."""

    exit_code = 1


class SpecError(TrainflowError):
    """The pipeline spec is invalid; ``problems`` lists every problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: str | list[str], source: str | None = None, what: str = "pipeline spec"):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        if len(self.problems) == 1:
            message = f"Invalid {what}{where}: {self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            message = f"Invalid {what}{where} ({len(self.problems)} problems):\n{lines}"
        super().__init__(message)


class ComponentError(SpecError):
    """A component is unknown, or its module failed to import."""


class DataError(TrainflowError):
    """Input data cannot be read or does not have the expected shape."""

    exit_code = 3


class OutputError(TrainflowError):
    """A folder or file trainflow must write (the run folder, a predictions file) cannot be created."""

    exit_code = 3


class ValidationFailed(TrainflowError):
    """Great Expectations checks failed; ``report`` is a readable summary of the failures."""

    exit_code = 4

    def __init__(self, report: str, docs_path: str | None = None):
        self.report = report
        self.docs_path = docs_path
        where = f"\nFull report: {docs_path}" if docs_path else ""
        super().__init__(f"Data validation failed:\n{report}{where}")

    def moved(self, old: str, new: str) -> None:
        """The report's folder ``old`` was renamed to ``new``: make the message point there."""
        if self.docs_path and self.docs_path.startswith(old):
            self.__init__(self.report, new + self.docs_path[len(old):])


def did_you_mean(got: object, choices: Iterable[str]) -> str:
    """Return `` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    match = difflib.get_close_matches(str(got), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def expected(what: str, allowed: Iterable[str], got: object) -> str:
    """Format the project's standard "must be one of" message with a close-match hint."""
    allowed = list(allowed)
    listed = ", ".join(f"'{a}'" for a in allowed)
    return f"{what} must be one of {listed}. Got '{got}'{did_you_mean(got, allowed)}."


_SHORT = reprlib.Repr()  # (keyword arguments need Python 3.12)
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 3, 200, 200, 60
_SHORT.maxdict = _SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = 8


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)``, shortened in the middle when longer than ``limit`` characters.

    Built by :mod:`reprlib` with small depth and length limits, so its cost is bounded too: a YAML alias
    bomb is a few KB on disk and a full ``repr`` of it gigabytes."""
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()  # 'a', not np.str_('a')
    text = _SHORT.repr(value)
    if len(text) <= limit:
        return text
    length = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[: limit // 2]}...{text[-limit // 4:]}{length}"
