"""Registering versions and moving aliases: the registry's write paths, with their events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine

from feedback_loop.registry.artifacts import LocalArtifactStore
from feedback_loop.store import registry as store
from feedback_loop.store.engine import read_transaction, write_transaction
from feedback_loop.store.events import write_event
from feedback_loop.store.references import save_reference

Guard = Callable[[Connection], None]
"""A check run first inside a write transaction; it raises to refuse the write."""


def register(
    engine: Engine,
    artifacts: LocalArtifactStore,
    *,
    model_name: str,
    model_id: int,
    model: Any,
    now_us: int,
    actor: str,
    serializer: str,
    train_start: int | None,
    train_end: int | None,
    train_rows: int | None,
    metrics: dict[str, Any],
    info: dict[str, Any],
    reference: dict[str, Any] | None,
    alias: str | None,
    guard: Guard | None = None,
) -> int:
    """Write the artifact, then record the version (with its reference) in one transaction.

    The artifact lands in a folder of its own before the transaction: a crash in between leaves
    an unreferenced folder, never a version without its artifact. ``guard`` runs first inside
    the transaction and may refuse it (a worker checking it still holds its job's lease).
    """
    stored = artifacts.put(model_name, model, serializer)
    with write_transaction(engine) as conn:
        if guard is not None:
            guard(conn)
        version = store.add_version(
            conn,
            model_id,
            created_at=now_us,
            created_by=actor,
            artifact_uri=stored.uri,
            sha256=stored.sha256,
            serializer=stored.serializer,
            size_bytes=stored.size_bytes,
            train_start=train_start,
            train_end=train_end,
            train_rows=train_rows,
            metrics=metrics,
            info=info,
        )
        if reference is not None:
            save_reference(
                conn,
                model_id=model_id,
                name="default",
                version=str(version),
                created_at=now_us,
                n_rows=int(train_rows or 0),
                source=f"training data of version {version}",
                data=reference,
            )
        write_event(
            conn,
            ts_us=now_us,
            kind="version_registered",
            model_id=model_id,
            version=str(version),
            actor=actor,
            reason=f"version {version} registered ({stored.size_bytes:,} bytes)",
            evidence={"sha256": stored.sha256, "metrics": metrics, "train_rows": train_rows},
        )
        if alias is not None:
            move_in(
                conn, model_id, alias, version, now_us, actor, f"set at registration of {version}"
            )
    return version


def move_in(
    conn: Any, model_id: int, alias: str, version: int | None, now_us: int, actor: str, reason: str
) -> int | None:
    """Move an alias inside the caller's transaction, with its ``alias_moved`` event."""
    previous = store.set_alias(
        conn, model_id, alias, version, ts=now_us, actor=actor, reason=reason
    )
    write_event(
        conn,
        ts_us=now_us,
        kind="alias_moved",
        model_id=model_id,
        version=None if version is None else str(version),
        actor=actor,
        reason=f"{alias}: {previous} → {version}: {reason}",
        evidence={"alias": alias, "version": version, "previous": previous},
    )
    return previous


def move_alias(
    engine: Engine,
    model_id: int,
    alias: str,
    version: int | None,
    *,
    now_us: int,
    actor: str,
    reason: str,
) -> int | None:
    with write_transaction(engine) as conn:
        return move_in(conn, model_id, alias, version, now_us, actor, reason)


def load(engine: Engine, model_id: int, version: int) -> Any:
    with read_transaction(engine) as conn:
        record = store.get_version(conn, model_id, version)
    return LocalArtifactStore.get(record.artifact_uri, record.sha256, record.serializer)
