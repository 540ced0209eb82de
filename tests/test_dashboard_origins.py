"""The dashboard's same-origin rule for POSTs: the request's own host, or a public origin the
operator names for a reverse proxy that rewrites ``Host``."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.requests import Request

from feedback_loop.dashboard.sessions import same_origin
from feedback_loop.server.settings import Settings, public_origins


def _post(host: str, origin: str | None, origins: tuple[str, ...] = ()) -> Request:
    app = Starlette()
    app.state.context = SimpleNamespace(settings=Settings(public_origins=origins))
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return Request({"type": "http", "method": "POST", "headers": headers, "app": app})


def test_posts_from_this_host_or_a_named_public_origin_only() -> None:
    assert same_origin(_post("127.0.0.1:8000", "http://127.0.0.1:8000"))
    assert not same_origin(_post("127.0.0.1:8000", "https://evil.example"))
    assert not same_origin(_post("127.0.0.1:8000", None))
    assert not same_origin(_post("127.0.0.1:8000", "null"))

    behind_proxy = ("https://ml.example.com",)  # nginx sends Host: upstream
    assert not same_origin(_post("upstream:8000", "https://ml.example.com"))
    assert same_origin(_post("upstream:8000", "https://ml.example.com", behind_proxy))
    assert same_origin(_post("upstream:8000", "HTTPS://ML.example.com", behind_proxy))
    assert not same_origin(_post("upstream:8000", "http://ml.example.com", behind_proxy))
    assert not same_origin(_post("upstream:8000", "https://evil.example", behind_proxy))


def test_public_origins_are_read_from_the_environment_and_checked() -> None:
    env = {"FEEDBACK_LOOP_PUBLIC_ORIGINS": "https://ml.example.com, http://a.test:8080"}
    assert Settings.from_env(env).public_origins == ("https://ml.example.com", "http://a.test:8080")
    assert public_origins("") == ()
    for bad in ("ml.example.com", "ftp://x.test", "https://x.test/ui"):
        with pytest.raises(ValueError, match="FEEDBACK_LOOP_PUBLIC_ORIGINS"):
            public_origins(bad)
