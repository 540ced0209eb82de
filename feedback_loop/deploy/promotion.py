"""Moving the champion: promotion (a rejected version only by force) and rollback, which
walks the champion's history backwards. A champion never moves without its event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from feedback_loop.collect.handle import ModelHandle
from feedback_loop.core.limits import check_actor, check_reason
from feedback_loop.deploy import registry
from feedback_loop.errors import FeedbackLoopError, RejectedVersionError, ValidationError
from feedback_loop.store.engine import Guard, write_transaction
from feedback_loop.store.events import Event, write_event

CHAMPION = "champion"


CHALLENGER = "challenger"


def gate_verdict(handle: ModelHandle, version: int) -> Event | None:
    """The gate's newest verdict on ``version`` (a ``gate_passed`` or ``gate_rejected``
    event), or None for a version that was never gated (registered by hand)."""
    for event in handle.events(kinds=["gate_passed", "gate_rejected"], limit=None):
        if event.version == str(version):
            return event  # newest first
    return None


def rejection(handle: ModelHandle, version: int) -> str | None:
    """Why the gate rejected ``version`` (its newest verdict), or None when it did not."""
    verdict = gate_verdict(handle, version)
    return verdict.reason if verdict is not None and verdict.kind == "gate_rejected" else None


def check_user_reason(reason: object) -> str:
    """A reason a user gives for a champion move: the audit trail's rule, and not the prefix
    that marks the moves :func:`rollback` makes (which :func:`champion_stack` replays)."""
    text = check_reason(reason)
    if text.startswith(ROLLBACK_PREFIX):
        raise ValidationError(
            f"must not start with {ROLLBACK_PREFIX!r} (it marks rollbacks): use rollback",
            field="reason",
        )
    return text


def promote_version(
    handle: ModelHandle,
    version: int,
    *,
    actor: str,
    reason: str,
    evidence: dict[str, Any] | None = None,
    force: bool = False,
    guard: Guard | None = None,
) -> int | None:
    """Move ``champion`` to ``version``; the previous champion stays registered.

    A version the gate rejected is only promoted with ``force``, and the override is kept in
    the ``promoted`` event's evidence (``forced`` and the gate's verdict)."""
    extra = dict(evidence or {})
    verdict = gate_verdict(handle, version)
    if verdict is not None and verdict.kind == "gate_rejected":
        if not force:
            raise RejectedVersionError(version, verdict.reason)
        extra["forced"] = {"gate_rejected": verdict.reason, "event": verdict.id}
    return _move_champion(
        handle,
        version,
        actor=actor,
        reason=reason,
        guard=guard,
        event=lambda previous: (
            "promoted",
            f"version {version} promoted over {previous}: {reason}",
            {"previous": previous, **extra},
        ),
    )


def _move_champion(
    handle: ModelHandle,
    version: int,
    *,
    actor: str,
    reason: str,
    guard: Guard | None,
    event: Callable[[int | None], tuple[str, str, dict[str, Any]]],
) -> int | None:
    """Move ``champion`` and write the event saying why, in one transaction: a champion never
    moves without its ``promoted`` or ``rolled_back`` event. Returns the previous champion."""
    check_actor(actor)  # a worker's or the watch's name, stored with the move and the event
    state = handle.model_state()
    now = handle.now_us()
    with write_transaction(handle.engine) as conn:
        if guard is not None:
            guard(conn)
        try:
            previous = registry.move_in(conn, state.id, CHAMPION, version, now, actor, reason)
        except FeedbackLoopError as exc:  # an unknown version
            raise ValidationError(str(exc), field="version") from exc
        kind, why, evidence = event(previous)
        write_event(
            conn,
            ts_us=now,
            kind=kind,
            model_id=state.id,
            version=str(version),
            actor=actor,
            reason=why,
            evidence=evidence,
        )
    return previous


ROLLBACK_PREFIX = "rollback: "


def champion_stack(moves: list[dict[str, Any]]) -> list[int]:
    """The champions in force, oldest first, replayed from the champion's alias history.

    Every move to a new version pushes it (a move to the current champion changes nothing);
    a rollback (a move whose reason starts with ``rollback: ``, written only by
    :func:`rollback`) pops back to the version it restored; removing the alias empties the
    stack. The top is the champion; the one below it is where a rollback goes, so successive
    rollbacks walk the history backwards instead of bouncing between two versions."""
    stack: list[int] = []
    for move in moves:
        version = move["version"]
        if version is None:
            stack = []
        elif str(move["reason"]).startswith(ROLLBACK_PREFIX):
            while stack and stack[-1] != version:
                stack.pop()
            if not stack:  # a history this rule did not write: start again from here
                stack = [version]
        elif not stack or stack[-1] != version:
            stack.append(version)
    return stack


def rollback_target(handle: ModelHandle) -> tuple[int, int]:
    """The champion and the version a rollback would put back (see :func:`champion_stack`);
    a ``ValidationError`` when there is none."""
    current = registry.aliases(handle).get(CHAMPION)
    stack = champion_stack(registry.alias_history(handle, CHAMPION))
    if current is None or len(stack) < 2 or stack[-1] != current:
        raise ValidationError(
            "the champion has no previous version to roll back to", field="champion"
        )
    return current, stack[-2]


def rollback(
    handle: ModelHandle, *, actor: str, reason: str, evidence: dict[str, Any] | None = None
) -> int:
    """Move ``champion`` back to the champion before the current one (see
    :func:`champion_stack`): a second rollback goes one step further back."""
    current, previous = rollback_target(handle)
    _move_champion(
        handle,
        previous,
        actor=actor,
        reason=f"{ROLLBACK_PREFIX}{reason}",
        guard=None,
        event=lambda _: (
            "rolled_back",
            f"champion {current} rolled back to {previous}: {reason}",
            {"from": current, "to": previous, **(evidence or {})},
        ),
    )
    return previous


def set_alias(
    handle: ModelHandle,
    alias: str,
    version: int | None,
    *,
    actor: str,
    reason: str,
    force: bool = False,
) -> int | None:
    """Point ``alias`` at ``version``; ``champion`` follows the rule of
    :func:`promote_version` (a version the gate rejected only with ``force``)."""
    if alias == CHAMPION and version is not None and not force:
        rejected = rejection(handle, version)
        if rejected is not None:
            raise RejectedVersionError(version, rejected)
    state = handle.model_state()
    try:
        return registry.move_alias(
            handle.engine,
            state.id,
            alias,
            version,
            now_us=handle.now_us(),
            actor=actor,
            reason=reason,
        )
    except FeedbackLoopError as exc:
        raise ValidationError(str(exc), field="version") from exc
