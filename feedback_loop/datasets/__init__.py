"""Data sets shipped with feedback-loop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources

import pandas as pd

ELEC2_START = datetime(1996, 5, 7, tzinfo=UTC)
ELEC2_STEP = timedelta(minutes=30)
ELEC2_FEATURES = [f"feat_{i}" for i in range(1, 7)]


def load_elec2() -> pd.DataFrame:
    """The Elec2 stream with a ``timestamp`` column (UTC, every 30 minutes); see README.md."""
    with resources.files(__package__).joinpath("elec2.csv.gz").open("rb") as handle:
        frame = pd.read_csv(handle, compression="gzip")
    frame.insert(0, "timestamp", pd.date_range(ELEC2_START, periods=len(frame), freq="30min"))
    return frame
