"""The README's paths, run as written.

Every ```python block of README.md is read at test time and run in a fresh working folder, named
by its heading. A snippet may only be given what the README says the reader brings (``frame``,
``train_df``, a trained ``model`` ...): each heading has a small namespace below that says what it
provides, and the database URLs the README writes (``postgresql://localhost/feedback``) become
the test's database. A block the extractor must not run alone is marked in the README with
``<!-- readme-test: REASON -->`` on the line before it; the server's client snippet is run with
the quick start by the test of the server steps, which runs the README's shell commands
(``export``, ``keys create``, ``serve``) through a shell against a real server on a loopback port.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from contextlib import chdir
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from servers import COMMAND_TIMEOUT_S, KEY_PATTERN, READY_TIMEOUT_S, ServerProcess, free_port
from sklearn.linear_model import LogisticRegression

from feedback_loop import FeedbackLoop
from feedback_loop.client import Client
from feedback_loop.loop import dispose_engines

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = re.compile(r"<!--\s*readme-test:\s*(.*?)\s*-->")
# The reader's databases, as the snippets write them: the test's database replaces them.
README_DATABASES = ("postgresql://localhost/feedback", "sqlite:///churn.db")
SERVER_DATABASE = "postgresql://host/feedback"  # the reader's database, in the shell steps
CHROMIUM = "/usr/bin/chromium"


@dataclass(frozen=True)
class Block:
    heading: str
    language: str
    code: str
    marker: str | None  # the reason a block is not run on its own, from the README

    @property
    def name(self) -> str:
        return self.heading


def readme_blocks(language: str) -> list[Block]:
    """The fenced blocks of one language, each under its nearest heading, in README order."""
    blocks: list[Block] = []
    heading = "(top)"
    lines = README.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            heading = line.lstrip("#").strip()
        elif line.startswith("```"):
            fence_language = line[3:].strip()
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            if fence_language == language:
                before = lines[i - 1] if i else ""
                found = MARKER.search(before)
                code = "\n".join(lines[i + 1 : end]) + "\n"
                blocks.append(Block(heading, language, code, found and found.group(1)))
            i = end
        i += 1
    return blocks


def block_under(heading: str, language: str) -> Block:
    found = [b for b in readme_blocks(language) if b.heading == heading]
    assert len(found) == 1, f"the README has {len(found)} {language} blocks under {heading!r}"
    return found[0]


def run_python(code: str, namespace: dict[str, Any], name: str) -> dict[str, Any]:
    """Run a snippet as a script would (top-level ``await`` allowed, as in asyncio code)."""
    compiled = compile(code, f"README.md: {name}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, namespace)
    if asyncio.iscoroutine(result):
        asyncio.run(result)
    return namespace


def with_database(code: str, db_url: str) -> str:
    for written in README_DATABASES:
        code = code.replace(written, db_url)
    return code


# -- what the reader provides, per heading ---------------------------------------------------


def _features(rng: np.random.Generator, n: int, *, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tenure": rng.integers(0, 60, n) + int(shift * 10),
            "spend": rng.normal(50 + shift * 5, 10, n),
            "plan": rng.choice(["free", "pro"], n),
        }
    )


def _python_api(db_url: str, tmp: Path) -> dict[str, Any]:
    """``frame`` (predictions with features, tags, actuals) and ``outcome_frame`` (later
    labels for some of them)."""
    rng = np.random.default_rng(1)
    n = 200
    now = datetime.now(UTC)
    score = rng.random(n)
    frame = _features(rng, n).assign(
        prediction_id=[f"f{i}" for i in range(n)],
        timestamp=[now - timedelta(hours=i) for i in range(n)],
        prediction=[{"label": int(s > 0.5), "score": float(s)} for s in score],
        actual=[int(rng.random() < s) if i % 2 else None for i, s in enumerate(score)],
        version="3",
        tags=[{"region": "eu" if i % 3 else "us"} for i in range(n)],
        latency_ms=rng.random(n) * 10,
    )
    outcome_frame = pd.DataFrame(
        {
            "prediction_id": [f"f{i}" for i in range(0, n, 2)],
            "actual": rng.integers(0, 2, n // 2),
            "source": "review",
            "timestamp": now.isoformat(),
        }
    )
    return {"frame": frame, "outcome_frame": outcome_frame}


def _scored_traffic(
    loop: FeedbackLoop,
    model: LogisticRegression,
    rng: np.random.Generator,
    n: int,
    *,
    days: int,
    shift: float = 0.0,
) -> None:
    """``n`` labeled predictions of ``model`` over the last ``days`` days, tagged by region;
    the labels follow the second feature, while the model learned the first (moved by
    ``shift``)."""
    now = datetime.now(UTC)
    X = pd.DataFrame({"x1": rng.normal(shift, 1.0, size=n), "x2": rng.normal(size=n)})
    score = model.predict_proba(X)[:, 1]
    loop.log_predictions(
        X.assign(
            prediction_id=[f"p{i}" for i in range(n)],
            timestamp=[now - timedelta(days=days) * (i + 0.5) / n for i in range(n)],
            prediction=[{"label": int(s >= 0.5), "score": float(s)} for s in score],
            actual=(X.x2 > 0).astype(int).to_numpy(),
            version="1",
            tags=[{"region": "eu" if i % 3 else "us"} for i in range(n)],
        )
    )


def _trained(rng: np.random.Generator, n: int = 1000) -> tuple[Any, ...]:
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    y = (X.x1 > 0).astype(int).to_numpy()
    model = LogisticRegression().fit(X, y)
    return X, y, model, model.predict_proba(X)[:, 1]


def _monitoring(db_url: str, tmp: Path) -> dict[str, Any]:
    """``loop``: a binary model with a month of scored, labeled, tagged predictions whose
    features and labels moved away from what the model learned; ``train_df``, ``train_scores`` and
    ``train_labels``: its training data, scores and labels."""
    rng = np.random.default_rng(2)
    X, y, model, scores = _trained(rng)
    loop = FeedbackLoop("churn", tracking_db=db_url, artifact_root=str(tmp / "artifacts"))
    _scored_traffic(loop, model, rng, 1500, days=30, shift=1.0)
    return {"loop": loop, "train_df": X, "train_scores": scores, "train_labels": y}


def _closing_the_loop(db_url: str, tmp: Path) -> dict[str, Any]:
    """``loop``: a new binary model with four weeks of labeled, tagged predictions whose labels
    moved away from what the model learned; ``model``, ``X_train``, ``p_train``, ``y_train``:
    the fitted model (not yet registered), its training features, scores and labels."""
    rng = np.random.default_rng(3)
    X, y, model, scores = _trained(rng)
    loop = FeedbackLoop("churn", tracking_db=db_url, artifact_root=str(tmp / "artifacts"))
    _scored_traffic(loop, model, rng, 2000, days=27)
    return {"loop": loop, "model": model, "X_train": X, "p_train": scores, "y_train": y}


def _export_and_retention(db_url: str, tmp: Path) -> dict[str, Any]:
    """A binary model with 45 days of labeled predictions in the reader's database."""
    rng = np.random.default_rng(4)
    _, _, model, _ = _trained(rng)
    loop = FeedbackLoop("churn", tracking_db=db_url, artifact_root=str(tmp / "artifacts"))
    _scored_traffic(loop, model, rng, 900, days=45)
    return {}


Provider = Callable[[str, Path], dict[str, Any]]
PROVIDED: dict[str, Provider] = {
    "Export and retention": _export_and_retention,
    "Quick start": lambda db_url, tmp: {},
    "Python API": _python_api,
    "Monitoring": _monitoring,
    "Closing the loop": _closing_the_loop,
}


def _check_quick_start(ns: dict[str, Any], out: str) -> None:
    assert "7-day accuracy: 0.00%" in out
    assert ns["feedback"].get_metrics(window="7d")["labeled"] == 1


def _check_python_api(ns: dict[str, Any], out: str) -> None:
    loop = ns["loop"]
    assert loop.get_metrics(window="all")["predictions"] == 202
    assert [e.kind for e in loop.events(kinds=["retrain_requested"])] == ["retrain_requested"]


def _check_monitoring(ns: dict[str, Any], out: str) -> None:
    assert "x1" in ns["report"].drifted_columns  # the traffic moved away from the training data


def _check_closing_the_loop(ns: dict[str, Any], out: str) -> None:
    loop, outcome = ns["loop"], ns["outcome"]
    assert outcome.candidate == 2 and outcome.promoted, outcome.reason
    assert loop.aliases()["champion"] == 2  # promoted by hand over 2, then rolled back to it
    assert [m["version"] for m in loop.alias_history("champion")] == [1, 2, 1, 2]


def _check_export_and_retention(ns: dict[str, Any], out: str) -> None:
    assert "900 predictions in" in out and ns["lake"].num_rows == 900
    assert sorted(ns["lake"].column("prediction_id").to_pylist()) == sorted(
        f"p{i}" for i in range(900)
    )
    dropped = ns["pruned"].predictions_dropped
    assert 250 < dropped < 900  # about a third of 45 days is older than 30
    assert ns["loop"].get_metrics(window="60d")["predictions"] == 900


CHECKS: dict[str, Callable[[dict[str, Any], str], None]] = {
    "Export and retention": _check_export_and_retention,
    "Quick start": _check_quick_start,
    "Python API": _check_python_api,
    "Monitoring": _check_monitoring,
    "Closing the loop": _check_closing_the_loop,
}


# -- the Python snippets -----------------------------------------------------------------------


def _runnable() -> list[Block]:
    return [b for b in readme_blocks("python") if b.marker is None]


def test_every_python_snippet_is_run_or_marked_with_a_reason() -> None:
    blocks = readme_blocks("python")
    assert len(blocks) >= 5
    for block in blocks:
        if block.marker is None:
            assert block.heading in PROVIDED, (
                f"README snippet under {block.heading!r} has no namespace in {__file__}: say "
                "what the reader provides, or mark it <!-- readme-test: why -->"
            )
        else:
            assert block.marker.strip(), f"the marker under {block.heading!r} gives no reason"
    assert len({b.heading for b in _runnable()}) == len(_runnable()), "one snippet per heading"


@pytest.mark.parametrize("block", _runnable(), ids=lambda b: b.name)
def test_python_snippet_runs_as_written(
    block: Block, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    namespace.update(PROVIDED[block.heading](db_url, tmp_path))
    work = tmp_path / "work"
    work.mkdir()
    with chdir(work):
        try:
            run_python(with_database(block.code, db_url), namespace, block.name)
        finally:
            dispose_engines()
    CHECKS[block.heading](namespace, capsys.readouterr().out)


# -- the server steps: shell commands, then the client quick start ---------------------------


def _shell_env(tmp: Path) -> dict[str, str]:
    """The reader's shell: ``feedback-loop`` on the PATH, no key or database set yet."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACK_LOOP_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["FEEDBACK_LOOP_ARTIFACTS"] = str(tmp / "artifacts")
    return env


def _server_steps(db_url: str, port: int) -> tuple[list[str], str]:
    """The README's shell lines (the reader's database and a free loopback port put in), split
    into the lines run before the server and the ``serve`` line."""
    code = block_under("Server", "bash").code
    assert SERVER_DATABASE in code and "--port 8000" in code
    code = code.replace(SERVER_DATABASE, shlex.quote(db_url))
    code = code.replace("--host 0.0.0.0", "--host 127.0.0.1").replace(
        "--port 8000", f"--port {port}"
    )
    lines = [line for line in code.splitlines() if line.strip()]
    serve = [line for line in lines if " serve " in f"{line} "]
    assert len(serve) == 1, "one serve line"
    return [line for line in lines if line not in serve], serve[0]


def test_server_steps_as_written(pg_url: str, tmp_path: Path) -> None:
    """``export``, ``keys create`` and ``serve`` as the README writes them, then the quick start
    through ``Client`` with the key the README made for it."""
    db_url = pg_url  # the README's server runs on PostgreSQL
    env = _shell_env(tmp_path)
    port = free_port()
    before, serve = _server_steps(db_url, port)
    exports = [line for line in before if line.startswith("export ")]
    keys: dict[str, str] = {}
    for line in before:
        if line in exports:
            continue
        done = subprocess.run(
            ["bash", "-c", "\n".join([*exports, line])],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        assert done.returncode == 0, f"{line}\n{done.stderr}"
        name = re.search(r"--name (\S+)", line)
        if name is not None:
            assert re.fullmatch(KEY_PATTERN, done.stdout.strip()), done.stdout
            keys[name.group(1)] = done.stdout.strip()
            schema = re.search(r"search_path%3D(\w+)", db_url)
            assert schema is not None and schema.group(1) in done.stderr, done.stderr
    assert "quickstart" in keys

    server = ServerProcess(
        db_url,
        tmp_path / "server.log",
        port=port,
        argv=lambda _: ["bash", "-c", "\n".join([*exports, f"exec {serve}"])],
        env=env,
    )
    server.start()
    try:
        client_code = block_under("Server", "python").code
        assert "KEY" in client_code and "quickstart" in README.read_text()
        client_code = client_code.replace("http://127.0.0.1:8000", server.url)
        quick_start = block_under("Quick start", "python").code
        constructor = re.compile(r"feedback = FeedbackLoop\(\n.*?\n\)\n", re.DOTALL)
        assert len(constructor.findall(quick_start)) == 1
        client_import, client_constructor = client_code.split("\n\n", 1)
        remote = client_import + "\n" + constructor.sub(client_constructor, quick_start)
        namespace: dict[str, Any] = {"KEY": keys["quickstart"]}
        run_python(remote, namespace, "Server: the quick start through Client")
        assert isinstance(namespace["feedback"], Client)
        metrics = FeedbackLoop("nba-game-predictor", tracking_db=db_url).get_metrics(window="7d")
        assert (metrics["predictions"], metrics["labeled"]) == (1, 1)
        # the service key logs and nothing more, as the README says
        service = Client(server.url, "svc", api_key=keys["ingest-svc"], timeout=READY_TIMEOUT_S)
        service.log_prediction(prediction=1)
        assert (
            httpx.get(
                f"{server.url}/v1/models/svc/metrics",
                headers={"Authorization": f"Bearer {keys['ingest-svc']}"},
                timeout=READY_TIMEOUT_S,
            ).status_code
            == 403
        )
    finally:
        server.stop()
        dispose_engines()


# -- the library paths the README promises -------------------------------------------------


def test_register_model_before_any_prediction_takes_the_task_from_the_model(
    db_url: str, tmp_path: Path
) -> None:
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LinearRegression

    from feedback_loop import ValidationError

    rng = np.random.default_rng(4)
    X = pd.DataFrame({"x1": rng.normal(size=300), "x2": rng.normal(size=300)})
    root = str(tmp_path / "artifacts")

    def fresh(name: str) -> FeedbackLoop:
        return FeedbackLoop(name, tracking_db=db_url, artifact_root=root)

    binary = LogisticRegression().fit(X, (X.x1 > 0).astype(int))
    loop = fresh("binary")
    scores = binary.predict_proba(X)[:, 1]
    assert loop.register_model(binary, features=X, predictions=scores, alias="champion") == 1
    assert loop.task == "binary"
    assert loop.log_prediction(prediction=0.8).inserted == 1  # a bare P(positive), as logged

    words = np.where(X.x1 > 0, "churned", "stayed")
    named = LogisticRegression().fit(X, words)
    loop = fresh("named")
    loop.register_model(named, features=X, actuals=words)
    assert loop.task == "binary" and loop.handle.model_state().spec.positive_label == "stayed"

    three = LogisticRegression().fit(X, np.digitize(X.x1, [-0.5, 0.5]))
    loop = fresh("three")
    loop.register_model(three, features=X)
    assert loop.task == "multiclass"

    for regressor in (LinearRegression(), RandomForestRegressor(n_estimators=3)):
        loop = fresh(f"reg-{type(regressor).__name__}")
        loop.register_model(regressor.fit(X, X.x1 * 2), features=X)
        assert loop.task == "regression"

    loop = fresh("opaque")
    with pytest.raises(ValidationError, match="pass task=") as unknown:
        loop.register_model({"weights": [1, 2]}, features=X)
    assert unknown.value.field == "task"
    assert loop.versions() == []
    # A declared task wins over the model's.
    declared = FeedbackLoop("declared", tracking_db=db_url, artifact_root=root, task="multiclass")
    declared.register_model(binary, features=X)
    assert declared.task == "multiclass"


def test_estimate_on_an_empty_window_says_the_window_is_empty(db_url: str) -> None:
    from feedback_loop import ValidationError

    loop = FeedbackLoop("empty", tracking_db=db_url, task="binary")
    loop.log_prediction(
        prediction={"label": 1, "score": 0.9}, timestamp=datetime.now(UTC) - timedelta(days=3)
    )
    with pytest.raises(ValidationError) as empty:
        loop.estimate_performance(window="1d")
    assert empty.value.field == "window"
    assert "no predictions" in str(empty.value) and "score" not in str(empty.value)
    loop.log_prediction(prediction=1)  # in the window, without a score
    with pytest.raises(ValidationError, match="logged a score"):
        loop.estimate_performance(window="1d")


# -- /docs: the API reference works offline ------------------------------------------------


def _external_urls(html: str, own: str) -> list[str]:
    """Every absolute URL the page would load or link to outside ``own``."""
    found = re.findall(r"""(?:src|href|action)\s*=\s*["']?([^"'\s>]+)""", html, re.IGNORECASE)
    found += re.findall(r"""url\(\s*["']?([^"')]+)""", html, re.IGNORECASE)
    found += re.findall(r"""@import\s+["']([^"']+)""", html, re.IGNORECASE)
    return [u for u in found if re.match(r"(?i)(https?:)?//", u) and not u.startswith(own)]


def test_api_docs_page_lists_every_route_and_loads_nothing_from_elsewhere(
    tmp_path: Path,
) -> None:
    server = ServerProcess(f"sqlite:///{tmp_path / 'docs.db'}", tmp_path / "server.log").start()
    try:
        page = httpx.get(f"{server.url}/docs", timeout=READY_TIMEOUT_S)
        spec = httpx.get(f"{server.url}/openapi.json", timeout=READY_TIMEOUT_S).json()
    finally:
        server.stop()
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert _external_urls(html, server.url) == []
    assert "<script" not in html.lower()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            assert f"<code>{path}</code>" in html, path
            assert operation["summary"] in html.replace("&#39;", "'"), (method, path)
    for name in spec["components"]["schemas"]:
        assert f'id="schema-{name}"' in html, name
    assert "PredictionRows" in html and "ErrorOut" in html  # request and response bodies


@pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"), reason="no chromium")
def test_api_docs_page_renders_without_network(tmp_path: Path) -> None:
    """Headless Chromium, every request off the server refused: the page still shows the
    routes, and it asked for nothing elsewhere."""
    from playwright.sync_api import Route, sync_playwright

    server = ServerProcess(f"sqlite:///{tmp_path / 'docs.db'}", tmp_path / "server.log").start()
    elsewhere: list[str] = []

    def only_the_server(route: Route) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=["--headless", "--no-sandbox", "--disable-gpu"],
            )
            page = browser.new_page()
            page.set_default_timeout(READY_TIMEOUT_S * 1000)
            page.route("**/*", only_the_server)
            page.goto(f"{server.url}/docs")
            assert "feedback-loop API" in page.inner_text("h1")
            assert page.locator("section.op").count() >= 25
            assert "/v1/models/{model}/predictions" in page.inner_text("table.toc")
            browser.close()
    finally:
        server.stop()
    assert elsewhere == []
