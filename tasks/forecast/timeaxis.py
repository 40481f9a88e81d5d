"""The time column of a forecast series: its kind (whole numbers, numbers, dates), step and format.

Kept from the file to the report table, the plots' x-axis and ``predict`` output, so that integer
years stay years (``1961``, never ``1961-01-01``) and months keep their written form (``1961-01``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trainflow.tasks.common.load import SLASHED, AmbiguousDates, dates_of

#: date formats tried, in order, for writing future times the way the file wrote its own
DATE_FORMATS = ("%Y-%m", "%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d",
                "%Y/%m", "%d/%m/%Y", "%m/%d/%Y", "%Y%m%d")
#: the season a regular date frequency suggests (pandas offset alias prefix -> steps per cycle)
SEASON_OF_FREQ = {"MS": 12, "ME": 12, "M": 12, "QS": 4, "QE": 4, "Q": 4, "W": 52, "D": 7, "B": 5,
                  "h": 24, "H": 24}


@dataclass(frozen=True)
class TimeAxis:
    """``kind``: integer | number | date; ``freq``: the pandas frequency of dates (None if irregular);
    ``step``: the step of numbers; ``fmt``: the strftime format the file's dates are written in."""

    kind: str
    freq: str | None = None
    step: float | None = None
    fmt: str | None = None

    @classmethod
    def of(cls, times: Any) -> TimeAxis:
        """The axis of a column of times as written in the file (text or numbers)."""
        import pandas as pd

        text = pd.Series(times).astype(str)
        numbers = pd.to_numeric(text, errors="coerce")
        if numbers.notna().all():
            whole = bool(np.all(np.mod(numbers, 1) == 0))
            diffs = np.diff(numbers.to_numpy())
            step = float(np.median(diffs)) if len(diffs) else 1.0
            return cls("integer" if whole else "number", step=step)
        try:
            dates = dates_of(text)
        except AmbiguousDates:  # (the loaders refuse these) month-first, as pandas reads them
            dates = pd.to_datetime(text, errors="coerce")
        freq = pd.infer_freq(dates) if len(dates) >= 3 and dates.notna().all() else None
        fmt = next((f for f in DATE_FORMATS if _writes(text, dates, f)), None)
        return cls("date", freq=freq, fmt=fmt)

    def values(self, times: Any) -> list[Any]:
        """The times as plot coordinates: numbers, or datetimes."""
        import pandas as pd

        text = pd.Series(times).astype(str)
        if self.kind == "date":
            return [t.to_pydatetime() for t in self._dates(text)]
        numbers = pd.to_numeric(text)
        return [int(v) for v in numbers] if self.kind == "integer" else [float(v) for v in numbers]

    def typed(self, times: Any) -> list[Any]:
        """The times for a table: whole numbers as int, numbers as float, dates as the file wrote them."""
        import pandas as pd

        return self.values(times) if self.kind != "date" else list(pd.Series(times).astype(str))

    def after(self, times: Any, horizon: int) -> list[Any] | None:
        """The next ``horizon`` times after the last of ``times``, typed like them (None when the dates
        have no regular frequency)."""
        import pandas as pd

        if self.kind != "date":
            last = self.values(times)[-1]
            step = self.step or 1
            future = [last + step * (i + 1) for i in range(horizon)]
            return [int(round(v)) for v in future] if self.kind == "integer" else [round(v, 10) for v in future]
        if self.freq is None:
            return None
        last = self._dates(pd.Series(times).astype(str)).iloc[-1]
        future = pd.date_range(last, periods=horizon + 1, freq=self.freq)[1:]
        return [d.strftime(self.fmt) if self.fmt else d.isoformat() for d in future]

    def _dates(self, text: Any) -> Any:
        """The dates of ``text``: read day-first or month-first as the file's were (see ``dates_of``)."""
        import pandas as pd

        return pd.to_datetime(text, format=self.fmt if self.fmt in SLASHED else None)

    def season(self) -> int | None:
        """The season the date frequency suggests (12 for months, 7 for days, ...), else None."""
        if self.kind != "date" or not self.freq:
            return None
        base = self.freq.split("-")[0].lstrip("0123456789")
        return SEASON_OF_FREQ.get(base)

    def describe(self) -> str:
        if self.kind == "date":
            return f"dates ({self.freq or 'irregular'}{f', written {self.fmt}' if self.fmt else ''})"
        return f"{'whole numbers' if self.kind == 'integer' else 'numbers'} (step {self.step:g})"


def _writes(text: Any, dates: Any, fmt: str) -> bool:
    try:
        return bool((dates.dt.strftime(fmt) == text).all())
    except (ValueError, AttributeError):
        return False
