"""The demo's live board ends on each replay's last day, whatever the throttling dropped."""

from __future__ import annotations

import queue
import time
from typing import Any

from feedback_loop import demo
from feedback_loop.backtest import replay
from feedback_loop.datasets import load_elec2


def _drained(ticks: queue.Queue[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    while not ticks.empty():
        out.append(ticks.get_nowait())
    return out


def test_the_last_state_of_a_replay_always_reaches_the_board(monkeypatch) -> None:
    data = load_elec2().iloc[:6_000]
    config = demo.elec2_config()
    every: list[dict[str, Any]] = []
    replay(data, demo.make_model, "never", config, on_tick=every.append)
    assert len(every) > 10
    # a clock that never moves: only the first day passes the throttle, unless it is kept
    monkeypatch.setattr(time, "monotonic", lambda: 1.0)
    ticks: queue.Queue[dict[str, Any]] = queue.Queue()
    demo._run_strategy(data, "never", config, None, ticks)
    sent = _drained(ticks)
    assert 2 <= len(sent) < len(every)  # throttled, and yet...
    assert sent[-1] == every[-1]  # ... the board's last row is the replay's end
    board = demo._Board()
    for state in sent:
        board.update(state)
    assert board.rows["never"]["now"] == every[-1]["now"]
