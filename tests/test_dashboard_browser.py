"""The dashboard in headless Chromium, against a real server process on a loopback port."""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from servers import READY_TIMEOUT_S, ServerProcess, create_key, seed_two_versions

from feedback_loop import FeedbackLoop

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = Path(__file__).resolve().parent.parent / "reports" / "dashboard.png"


def _seed(url: str, tmp_path: Path) -> None:
    """A model with two versions, version 2 promoted over 1, and a week of tagged, labeled
    traffic (600 predictions, one every 15 minutes)."""
    loop = FeedbackLoop(
        "churn", tracking_db=url, task="binary", artifact_root=str(tmp_path / "artifacts")
    )
    seed_two_versions(loop, datetime.now(UTC), 600, every=timedelta(minutes=15), tags=True)


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="no chromium here")
def test_dashboard_pages_charts_and_rollback(db_url, tmp_path) -> None:
    assert CHROMIUM is not None, "CI must install chromium (see .ci/run)"
    from playwright.sync_api import sync_playwright

    _seed(db_url, tmp_path)
    key = create_key(db_url, "ui", "admin")
    server = ServerProcess(db_url, tmp_path / "server.log").start()
    base = server.url
    try:
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
            page.fill("#key", key)
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
            assert cookie["path"] == "/ui" and key not in cookie["value"]
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
        server.stop()
