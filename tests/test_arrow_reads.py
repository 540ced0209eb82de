"""PostgreSQL windows are read through ADBC connections that are kept between reads (opening
one costs more than a small read); a kept connection the server closed is replaced."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import psycopg

from feedback_loop import FeedbackLoop, ManualClock
from feedback_loop.loop import dispose_engines
from feedback_loop.store import reader


def _kept(loop: FeedbackLoop) -> list[Any]:
    return reader._idle.get((os.getpid(), id(loop.engine)), [])


def test_arrow_connections_are_kept_and_replaced_when_closed(
    pg_url: str, clock: ManualClock
) -> None:
    loop = FeedbackLoop("kept", tracking_db=pg_url, clock=clock)
    loop.log_predictions(
        [
            {"prediction_id": f"p{i}", "prediction": i % 2, "actual": int(i % 3 == 0)}
            for i in range(50)
        ]
    )
    clock.advance(timedelta(minutes=5))
    window = (clock.now() - timedelta(minutes=10), clock.now())  # not whole hours: the log
    first = loop.get_metrics(window=window)
    assert first["labeled"] == 50
    kept = _kept(loop)
    assert len(kept) == 1
    connection = kept[0]

    assert loop.get_metrics(window=window) == first
    assert _kept(loop) == [connection]  # the same one, not a new one per read

    cursor = connection.cursor()
    cursor.execute("SELECT pg_backend_pid()")
    backend = cursor.fetchone()[0]
    cursor.close()
    with psycopg.connect(pg_url.split("?")[0], autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    assert loop.get_metrics(window=window) == first  # replaced, not an error
    assert _kept(loop) and _kept(loop)[0] is not connection

    dispose_engines()
    assert _kept(loop) == []
