"""The dashboard in headless Chromium, against a real server process on a loopback port."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from servers import READY_TIMEOUT_S, wait_ready
from sklearn.linear_model import LogisticRegression

from feedback_loop import FeedbackLoop

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = Path(__file__).resolve().parent.parent / "reports" / "dashboard.png"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seed(url: str, tmp_path: Path) -> None:
    """A model with two versions, version 2 promoted over 1, and a week of labeled traffic."""
    loop = FeedbackLoop(
        "churn", tracking_db=url, task="binary", artifact_root=str(tmp_path / "artifacts")
    )
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x1": rng.normal(size=600), "x2": rng.normal(size=600)})
    y = (X.x1 > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    loop.register_model(
        model,
        features=X,
        predictions=model.predict_proba(X)[:, 1],
        actuals=y.to_numpy(),
        alias="champion",
        metrics={"holdout_accuracy": 0.9},
    )
    loop.register_model(model)
    loop.promote(2, reason="seeded promotion")
    now = datetime.now(UTC)
    score = model.predict_proba(X)[:, 1]
    loop.log_predictions(
        X.assign(
            prediction_id=[f"p{i}" for i in range(600)],
            timestamp=[now - timedelta(hours=i / 4) for i in range(600)],
            prediction=[{"label": int(s >= 0.5), "score": float(s)} for s in score],
            actual=y.to_numpy(),
            version="2",
            tags=[{"region": "eu" if i % 3 else "us"} for i in range(600)],
        )
    )


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="no chromium here")
def test_dashboard_pages_charts_and_rollback(db_url, tmp_path) -> None:
    assert CHROMIUM is not None, "CI must install chromium (see .ci/run)"
    from playwright.sync_api import sync_playwright

    _seed(db_url, tmp_path)
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "feedback_loop.cli",
            "keys",
            "create",
            "--name",
            "ui",
            "--scope",
            "admin",
            "--db",
            db_url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    key = re.search(r"fl_[A-Za-z0-9_\-]+", created.stdout)
    assert key is not None, created.stdout
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "feedback_loop.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--db",
            db_url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(server, base)
        errors: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                ],
            )
            page = browser.new_page(viewport={"width": 1100, "height": 1400})
            page.set_default_timeout(READY_TIMEOUT_S * 1000)  # a loaded machine renders slowly
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/ui/login")
            page.fill("#key", key.group(0))
            page.click("#signin")
            page.wait_for_url(f"{base}/ui")
            assert page.locator("text=churn").count() >= 1
            page.click("text=churn")
            page.wait_for_url(f"{base}/ui/models/churn")
            assert page.locator("svg.chart path.series").count() >= 2  # drawn series
            assert "champion = v2" in page.inner_text("header")
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=False)
            # an action asks first, on a page of its own, then acts
            page.click("#rollback")
            page.wait_for_url(re.compile(r".*/ui/models/churn/rollback\??$"))  # a GET form
            assert "version 2" in page.inner_text("#what")
            page.click("#confirm")
            page.wait_for_url(f"{base}/ui/models/churn")
            assert "champion = v1" in page.inner_text("header")
            # the promote list starts on no version; the browser will not submit it unchosen
            assert page.input_value("#version") == ""
            page.select_option("#version", "2")
            page.click("#promote")
            page.wait_for_url(re.compile(r".*/ui/models/churn/promote\?version=2$"))
            page.click("#confirm")
            page.wait_for_url(f"{base}/ui/models/churn")
            assert "champion = v2" in page.inner_text("header")
            # signing out ends the session on the server: the old cookie opens nothing
            cookie = next(c for c in page.context.cookies() if c["name"] == "fl_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert cookie["path"] == "/ui" and key.group(0) not in cookie["value"]
            page.click("#signout")
            page.wait_for_url(f"{base}/ui/login")
            page.goto(f"{base}/ui")
            page.wait_for_url(f"{base}/ui/login")
            browser.close()
        stale = httpx.get(f"{base}/ui", cookies={"fl_session": cookie["value"]})
        assert stale.status_code == 303 and stale.headers["location"] == "/ui/login"
        assert errors == []
        loop = FeedbackLoop("churn", tracking_db=db_url)
        assert loop.aliases()["champion"] == 2
        assert loop.events(kinds=["rolled_back"])[0].actor == "api:ui"
        assert loop.events(kinds=["promoted"])[0].actor == "api:ui"
    finally:
        server.terminate()
        server.wait(timeout=60)
