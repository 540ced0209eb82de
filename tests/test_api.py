"""``FeedbackLoop`` and ``Client`` implement the one declared face, ``LoopAPI``: every method
and parameter declared there is accepted by both, with the same kind and default, so the two
cannot drift apart silently. Extra parameters are keyword-only with a default."""

from __future__ import annotations

import inspect

import pytest

from feedback_loop.api import LoopAPI
from feedback_loop.client import Client
from feedback_loop.loop import FeedbackLoop

DECLARED = sorted(
    name
    for name, member in vars(LoopAPI).items()
    if not name.startswith("_") and (callable(member) or isinstance(member, property))
)


def test_the_face_declares_the_shared_methods() -> None:
    assert {"log_prediction", "get_metrics", "should_retrain", "promote", "events"} <= set(DECLARED)


@pytest.mark.parametrize("implementation", [FeedbackLoop, Client])
@pytest.mark.parametrize("name", DECLARED)
def test_each_implementation_matches_the_declared_signature(implementation, name) -> None:
    declared = getattr(LoopAPI, name)
    actual = getattr(implementation, name)
    if isinstance(declared, property):
        assert isinstance(actual, property), f"{implementation.__name__}.{name}"
        return
    want = inspect.signature(declared).parameters
    have = inspect.signature(actual).parameters
    for parameter in want.values():
        assert parameter.name in have, f"{implementation.__name__}.{name} lacks {parameter.name}"
        got = have[parameter.name]
        assert (got.kind, got.default) == (parameter.kind, parameter.default), (
            f"{implementation.__name__}.{name}({parameter.name})"
        )
    positional = [p.name for p in want.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert [p.name for p in have.values() if p.kind is p.POSITIONAL_OR_KEYWORD] == positional
    for extra in set(have) - set(want):
        p = have[extra]
        assert p.kind is p.KEYWORD_ONLY and p.default is not p.empty, (
            f"{implementation.__name__}.{name}({extra}) must be keyword-only with a default"
        )


@pytest.mark.parametrize("implementation", [FeedbackLoop, Client])
def test_both_are_declared_implementations(implementation) -> None:
    assert LoopAPI in implementation.__mro__


def test_the_loop_documents_what_the_face_declares() -> None:
    """A method documented only on the face still shows its documentation on the loop."""
    assert inspect.getdoc(FeedbackLoop.log_prediction) == inspect.getdoc(LoopAPI.log_prediction)
