"""The registry: versions of a model (artifact, SHA-256, training window, metrics, reference)
and the aliases that point at them, every move with its event."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from feedback_loop.collect.batches import to_frame
from feedback_loop.collect.handle import ModelHandle
from feedback_loop.core.timeutil import from_us, to_us
from feedback_loop.errors import ValidationError
from feedback_loop.monitor.references import reference_from_frame
from feedback_loop.store import registry as store
from feedback_loop.store.artifacts import LocalArtifactStore
from feedback_loop.store.engine import Guard, read_transaction, write_transaction
from feedback_loop.store.events import write_event
from feedback_loop.store.references import save_reference
from feedback_loop.store.registry import VersionRecord


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


def register_version(
    handle: ModelHandle,
    model: Any,
    *,
    features: Any = None,
    predictions: Any = None,
    actuals: Any = None,
    train_start: Any = None,
    train_end: Any = None,
    train_rows: int | None = None,
    metrics: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
    serializer: str = "joblib",
    alias: str | None = None,
    actor: str = "user",
    guard: Guard | None = None,
) -> int:
    """A new version of the handle's model (see ``FeedbackLoop.register_model``), with
    ``guard`` run inside the registering transaction. The training features' column order is
    kept in ``info['features']``: predicting with the version uses that order."""
    state = handle.model_state()
    if state.spec.task is None:
        state = handle.task_from_model(model, required=features is not None)
    reference = None
    frame = None
    if features is not None:
        frame = to_frame(features)
        reference = reference_from_frame(state, frame, predictions, actuals)
    details = dict(info or {})
    if frame is not None:
        details.setdefault("features", [str(c) for c in frame.columns])
    if train_rows is None and frame is not None:
        train_rows = len(frame)
    return register(
        handle.engine,
        handle.artifacts,
        model_name=handle.name,
        model_id=state.id,
        model=model,
        now_us=handle.now_us(),
        actor=actor,
        serializer=serializer,
        train_start=None if train_start is None else to_us(train_start, field="train_start"),
        train_end=None if train_end is None else to_us(train_end, field="train_end"),
        train_rows=train_rows,
        metrics=metrics or {},
        info=details,
        reference=reference,
        alias=alias,
        guard=guard,
    )


def versions(handle: ModelHandle) -> list[VersionRecord]:
    state = handle.read_state()
    with read_transaction(handle.engine) as conn:
        return store.list_versions(conn, state.id)


def aliases(handle: ModelHandle) -> dict[str, int]:
    state = handle.read_state()
    with read_transaction(handle.engine) as conn:
        return store.all_aliases(conn, state.id)


def alias_history(handle: ModelHandle, alias: str | None = None) -> list[dict[str, Any]]:
    """Every move of ``alias`` (or of every alias), oldest first, with its time."""
    state = handle.read_state()
    with read_transaction(handle.engine) as conn:
        rows = store.history(conn, state.id, alias)
    for row in rows:
        row["time"] = from_us(row.pop("ts"))
    return rows


def resolve_version(handle: ModelHandle, version: int | str) -> int:
    """A version number, or the version an alias points at."""
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    found = aliases(handle).get(str(version))
    if found is None:
        raise ValidationError(f"no alias {version!r} is set", field="version")
    return found


def load_model(handle: ModelHandle, version: int | str = "champion") -> Any:
    """The model object of a version or alias, loaded only if its SHA-256 matches."""
    state = handle.read_state()
    return load(handle.engine, state.id, resolve_version(handle, version))
