"""The HTML report: self-contained, with charts drawn from the log."""

from __future__ import annotations

import re
from datetime import timedelta

from test_deploy import (
    _batch,
    _champion,
    _serve,
    loop,  # noqa: F401 - the fixture
)
from typer.testing import CliRunner

from feedback_loop.cli import app


def test_report_has_charts_markers_and_cards(loop, clock, tmp_path) -> None:  # noqa: F811
    import numpy as np

    rng = np.random.default_rng(0)
    champion = _champion(loop, rng)
    loop.set_reference(window=None, features=_batch(rng, 500, flipped=False)[["x1", "x2"]])
    _serve(loop, clock, champion, _batch(rng, 800, flipped=True), "a")
    loop.trigger_retraining("concept flipped")
    clock.advance(timedelta(hours=1))
    _serve(loop, clock, loop.load_model("champion"), _batch(rng, 400, flipped=True), "b")
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        app,
        [
            "report",
            "-m",
            "life",
            "--db",
            str(loop.engine.url.render_as_string(False)),
            "--out",
            str(out),
            "--period",
            "1h",
        ],
    )
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")
    assert html.count("<svg") >= 4  # quality, coverage, delay, drift heatmap
    assert re.search(r'<path d="M[0-9.]+,[0-9.]+ L', html)  # a drawn series
    assert "#16a34a" in html  # the promotion marker
    assert "version 2" in html and "promoted" in html
    assert "pass" in html and "improvement" in html  # the gate's checks in the decision log
