"""The ``feedback-loop`` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from feedback_loop.errors import FeedbackLoopError, RejectedVersionError
from feedback_loop.store.jobs import DEFAULT_MAX_ATTEMPTS

if TYPE_CHECKING:
    import pandas as pd

    from feedback_loop.loop import FeedbackLoop as Loop

app = typer.Typer(help="Close the machine-learning feedback loop.", no_args_is_help=True)
log_app = typer.Typer(help="Log predictions or outcomes from a file.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(log_app, name="log")
app.add_typer(db_app, name="db")
console = Console()
err_console = Console(stderr=True)

Model = Annotated[str, typer.Option("--model", "-m", help="Model name.")]
Db = Annotated[
    str | None,
    typer.Option("--db", envvar="FEEDBACK_LOOP_DB", help="Database URL (default: SQLite file)."),
]


def FeedbackLoop(*args: Any, **kwargs: Any) -> Loop:
    """The library's ``FeedbackLoop``, imported when a command first needs it: commands that
    need none of it (``keys``, ``webhooks``, ``db``) start without importing pandas, SciPy and
    scikit-learn."""
    from feedback_loop.loop import FeedbackLoop as loop_class

    return loop_class(*args, **kwargs)


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


def read_table(path: Path) -> pd.DataFrame:
    """CSV, JSON lines or Parquet, by extension."""
    import pandas as pd

    from feedback_loop.collect.csv_input import decode_csv

    if not path.exists():
        raise _fail(f"{path} does not exist")
    suffixes = "".join(path.suffixes).lower()
    if suffixes.endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    if suffixes.endswith((".jsonl", ".ndjson", ".json", ".jsonl.gz")):
        return pd.read_json(path, lines=True, dtype=False)
    if suffixes.endswith((".csv", ".csv.gz")):
        try:  # JSON cells and `tags.<key>`-style columns carry the structured fields
            return decode_csv(pd.read_csv(path))
        except FeedbackLoopError as exc:
            raise _fail(f"{path}: {exc}") from exc
    raise _fail(f"{path}: use a .csv, .jsonl or .parquet file")


def _ingest(frame: pd.DataFrame, write: Any, what: str, chunk_size: int) -> int:
    stored = 0
    with Progress(
        TextColumn(f"[bold]logging {what}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} rows"),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
        disable=len(frame) <= chunk_size,
    ) as progress:
        task = progress.add_task(what, total=len(frame))
        for start in range(0, len(frame), chunk_size):
            chunk = frame.iloc[start : start + chunk_size]
            try:
                write(chunk)
            except FeedbackLoopError as exc:
                raise _fail(
                    f"rows {start:,} to {start + len(chunk) - 1:,}: {exc} "
                    f"(rows before {start:,} are stored; each chunk is stored whole or not at all)"
                ) from exc
            stored += len(chunk)
            progress.advance(task, len(chunk))
    return stored


@log_app.command("predictions")
def log_predictions(
    path: Path,
    model: Model,
    db: Db = None,
    task: Annotated[str | None, typer.Option(help="binary, multiclass or regression.")] = None,
    chunk_size: Annotated[int, typer.Option(help="Rows per transaction.")] = 50_000,
) -> None:
    """Log predictions from FILE (.csv, .jsonl or .parquet)."""
    loop = FeedbackLoop(model, tracking_db=db, task=task)
    frame = read_table(path)
    count = _ingest(frame, loop.log_predictions, "predictions", chunk_size)
    console.print(f"stored {count:,} predictions for [bold]{model}[/]")


@log_app.command("outcomes")
def log_outcomes(
    path: Path,
    model: Model,
    db: Db = None,
    chunk_size: Annotated[int, typer.Option(help="Rows per transaction.")] = 50_000,
) -> None:
    """Log outcomes (ground truth) from FILE (.csv, .jsonl or .parquet)."""
    loop = FeedbackLoop(model, tracking_db=db)
    frame = read_table(path)
    count = _ingest(frame, loop.log_outcomes, "outcomes", chunk_size)
    unmatched = loop.unmatched_outcomes()
    console.print(f"stored {count:,} outcomes for [bold]{model}[/]; {unmatched:,} unmatched")


def _segment(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise _fail(f"--segment {item!r}: use KEY=VALUE")
        out[key] = value
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@app.command()
def metrics(
    model: Model,
    db: Db = None,
    window: Annotated[str, typer.Option(help="e.g. 7d, 24h, or 'all'.")] = "7d",
    version: Annotated[str | None, typer.Option()] = None,
    segment: Annotated[list[str] | None, typer.Option(help="Tag filter KEY=VALUE.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Quality metrics over a window."""
    try:
        loop = FeedbackLoop(model, tracking_db=db)
        result = loop.get_metrics(window=window, version=version, segment=_segment(segment))
    except FeedbackLoopError as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    table = Table(title=f"{model} — window {window}", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if key in ("model", "segment") and value is None:
            continue
        table.add_row(key, _fmt(value))
    console.print(table)


@app.command()
def events(
    model: Model,
    db: Db = None,
    kind: Annotated[list[str] | None, typer.Option(help="Only these kinds.")] = None,
    limit: Annotated[int, typer.Option()] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """The audit trail of a model, newest first."""
    try:
        found = FeedbackLoop(model, tracking_db=db).events(kinds=kind, limit=limit)
    except FeedbackLoopError as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        for event in found:
            sys.stdout.write(json.dumps(event.to_dict()) + "\n")
        return
    table = Table(title=f"{model} — events")
    for column in ("time", "kind", "version", "actor", "reason"):
        table.add_column(column)
    for event in found:
        table.add_row(
            event.time.strftime("%Y-%m-%d %H:%M:%S"),
            event.kind,
            event.version or "",
            event.actor,
            event.reason,
        )
    console.print(table)


@app.command()
def reference(
    model: Model,
    path: Annotated[
        Path | None, typer.Argument(help="Reference data (.csv/.jsonl/.parquet).")
    ] = None,
    db: Db = None,
    window: Annotated[
        str | None, typer.Option(help="Use a logged window instead of a file.")
    ] = None,
    prediction_column: Annotated[str | None, typer.Option(help="Column of predictions.")] = None,
    actual_column: Annotated[str | None, typer.Option(help="Column of actual labels.")] = None,
    version: Annotated[str | None, typer.Option()] = None,
    name: Annotated[str, typer.Option(help="Reference name.")] = "default",
) -> None:
    """Store the reference that drift checks and estimates compare against."""
    try:
        loop = FeedbackLoop(model, tracking_db=db)
        if path is not None:
            frame = read_table(path)
            predictions = frame.pop(prediction_column) if prediction_column else None
            actuals = frame.pop(actual_column) if actual_column else None
            info = loop.set_reference(
                frame, predictions=predictions, actuals=actuals, version=version, name=name
            )
        else:
            info = loop.set_reference(window=window, version=version, name=name)
    except FeedbackLoopError as exc:
        raise _fail(str(exc)) from exc
    console.print(
        f"reference [bold]{info['name']}[/] stored from {info['source']}: {info['rows']:,} rows"
    )


@app.command()
def drift(
    model: Model,
    db: Db = None,
    window: Annotated[str, typer.Option(help="e.g. 7d, 24h.")] = "7d",
    reference_name: Annotated[str, typer.Option("--reference", help="Reference name.")] = "default",
    correction: Annotated[
        str, typer.Option(help="none, bonferroni or benjamini_hochberg.")
    ] = "none",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Drift of every feature, the prediction and the label against the reference."""
    try:
        report = FeedbackLoop(model, tracking_db=db).check_drift(
            window=window, reference=reference_name, correction=correction
        )
    except FeedbackLoopError as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
        return
    console.print(report)
    if report.missing:
        console.print(f"not in the window: {', '.join(report.missing)}")


@app.command()
def estimate(
    model: Model,
    db: Db = None,
    window: Annotated[str, typer.Option(help="e.g. 7d, 24h.")] = "7d",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Label-free performance estimate of a binary classifier over a window."""
    try:
        result = FeedbackLoop(model, tracking_db=db).estimate_performance(window=window)
    except FeedbackLoopError as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    table = Table(title=f"{model}: estimated quality over {window} (no labels needed)")
    table.add_column("metric")
    table.add_column("estimate", justify="right")
    for key, value in result.items():
        table.add_row(key, _fmt(value))
    console.print(table)


@app.command()
def segments(
    model: Model,
    by: Annotated[list[str], typer.Option(help="Tag or feature to slice by (repeatable).")],
    db: Db = None,
    window: Annotated[str, typer.Option(help="e.g. 7d, 24h.")] = "7d",
    metric: Annotated[str | None, typer.Option(help="Metric to rank by.")] = None,
    min_support: Annotated[int, typer.Option(help="Smallest slice shown.")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Metrics per slice, worst first."""
    try:
        loop = FeedbackLoop(model, tracking_db=db)
        rows = loop.segments(window=window, by=by, metric=metric, min_support=min_support)
        chosen = metric or loop.primary_metric
    except FeedbackLoopError as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    table = Table(title=f"{model}: segments by {', '.join(by)} over {window}, worst first")
    for column in (*by, "n", chosen):
        table.add_column(column, justify="right" if column in ("n", chosen) else "left")
    for row in rows:
        table.add_row(*(str(row["segment"][k]) for k in by), _fmt(row["n"]), _fmt(row.get(chosen)))
    console.print(table)


@app.command()
def report(
    model: Model,
    out: Annotated[Path, typer.Option(help="Where to write the HTML file.")] = Path("report.html"),
    db: Db = None,
    period: Annotated[str, typer.Option(help="Chart resolution, e.g. 1d or 7d.")] = "7d",
) -> None:
    """Write one self-contained HTML report: quality, labels, drift, segments, decisions."""
    from feedback_loop.report import write_report

    try:
        path = write_report(FeedbackLoop(model, tracking_db=db), out, period=period)
    except FeedbackLoopError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"report written to [bold]{path}[/]")


@app.command()
def history(
    model: Model,
    db: Db = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Versions, aliases and every alias move of a model."""
    try:
        loop = FeedbackLoop(model, tracking_db=db)
        versions, aliases, moves = loop.versions(), loop.aliases(), loop.alias_history()
    except FeedbackLoopError as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        payload = {
            "aliases": aliases,
            "versions": [
                {
                    "version": v.version,
                    "created_by": v.created_by,
                    "sha256": v.sha256,
                    "train_rows": v.train_rows,
                    "metrics": v.metrics,
                }
                for v in versions
            ],
            "moves": moves,
        }
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        return
    by_version: dict[int, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    table = Table(title=f"{model}: versions")
    for column in ("version", "aliases", "created by", "train rows", "metrics"):
        table.add_column(column)
    for v in versions:
        shown = ", ".join(f"{k}={_fmt(x)}" for k, x in list(v.metrics.items())[:4])
        table.add_row(
            str(v.version),
            ", ".join(by_version.get(v.version, [])),
            v.created_by,
            _fmt(v.train_rows),
            shown,
        )
    console.print(table)
    moves_table = Table(title=f"{model}: alias moves")
    for column in ("time", "alias", "from", "to", "actor", "reason"):
        moves_table.add_column(column)
    for m in moves:
        moves_table.add_row(
            m["time"].strftime("%Y-%m-%d %H:%M:%S"),
            m["alias"],
            _fmt(m["previous_version"]),
            _fmt(m["version"]),
            m["actor"],
            m["reason"],
        )
    console.print(moves_table)


@app.command()
def promote(
    model: Model,
    version: Annotated[int, typer.Argument(help="Version to make champion.")],
    db: Db = None,
    reason: Annotated[str, typer.Option()] = "promoted from the command line",
    actor: Annotated[str, typer.Option()] = "cli",
    force: Annotated[
        bool, typer.Option("--force", help="Promote even a version the gate rejected.")
    ] = False,
) -> None:
    """Make a version the champion (a version the gate rejected needs --force)."""
    try:
        FeedbackLoop(model, tracking_db=db).promote(
            version, actor=actor, reason=reason, force=force
        )
    except RejectedVersionError as exc:
        err_console.print(f"[bold yellow]warning:[/] {exc}")
        raise _fail("not promoted; add --force to promote it anyway") from exc
    except FeedbackLoopError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"version {version} is now the champion of [bold]{model}[/]")


@app.command()
def rollback(
    model: Model,
    db: Db = None,
    reason: Annotated[str, typer.Option()] = "rolled back from the command line",
    actor: Annotated[str, typer.Option()] = "cli",
) -> None:
    """Put the previous champion back."""
    try:
        version = FeedbackLoop(model, tracking_db=db).rollback(actor=actor, reason=reason)
    except FeedbackLoopError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"rolled back: version {version} is the champion of [bold]{model}[/] again")


@app.command()
def retrain(
    model: Model,
    db: Db = None,
    command: Annotated[
        str | None,
        typer.Option(help="Training command with {data} and {out}; without it a job is queued."),
    ] = None,
    reason: Annotated[str, typer.Option()] = "retraining requested from the command line",
    no_promote: Annotated[bool, typer.Option("--no-promote", help="Gate only.")] = False,
) -> None:
    """Retrain now with a command (gate and promote), or queue a job for the worker."""
    from feedback_loop.deploy.candidates import RetrainOutcome

    try:
        loop = FeedbackLoop(model, tracking_db=db)
        if command:
            loop.set_trainer(command)
        outcome = loop.trigger_retraining(reason, actor="cli", promote=not no_promote)
    except FeedbackLoopError as exc:
        raise _fail(str(exc)) from exc
    if isinstance(outcome, RetrainOutcome):
        if outcome.failed:
            raise _fail(f"retraining failed: {outcome.reason}")
        word = "promoted" if outcome.promoted else "not promoted"
        console.print(f"candidate {outcome.candidate}: {word} ({outcome.reason})")
    else:
        console.print(f"queued: {outcome.reason} (a worker will run it)")


@app.command()
def worker(
    config: Annotated[Path, typer.Option(help="Project file (feedback_loop.toml).")] = Path(
        "feedback_loop.toml"
    ),
    db: Db = None,
    once: Annotated[
        bool, typer.Option(help="Evaluate policies and run one job, then exit.")
    ] = False,
    poll: Annotated[float, typer.Option(help="Seconds between polls.")] = 10.0,
    max_attempts: Annotated[
        int,
        typer.Option(
            min=1, help="Claims of a job that never finish (crash, lost lease) before it fails."
        ),
    ] = DEFAULT_MAX_ATTEMPTS,
) -> None:
    """Run retraining policies on a schedule and execute training jobs."""
    from datetime import timedelta

    from feedback_loop.project import load_worker

    try:
        runner = load_worker(config, db)
    except (FeedbackLoopError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from exc
    runner.max_attempts = max_attempts
    if once:
        runner.apply_retention()
        queued = runner.evaluate_policies()
        done = runner.run_once()
        console.print(f"policies fired for: {', '.join(queued) or 'none'}; job: {done}")
        if done is not None and done["status"] != "succeeded":
            raise _fail(f"job {done['job']} {done['status']}: {done['error']}")
        return
    console.print(f"worker {runner.name} polling every {poll:g} s (Ctrl-C to stop)")
    try:
        runner.run_forever(poll=timedelta(seconds=poll))
    except KeyboardInterrupt:
        console.print("stopped")


@app.command()
def export(
    model: Model,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write Parquet under.")],
    db: Db = None,
    since: Annotated[
        str | None, typer.Option(help="First prediction time (ISO 8601), inclusive.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Last prediction time (ISO 8601), exclusive.")
    ] = None,
    chunk_rows: Annotated[int, typer.Option(help="Rows read and written at a time.")] = 100_000,
    overwrite: Annotated[
        bool, typer.Option(help="Replace days this model already has under OUT.")
    ] = False,
) -> None:
    """Write a model's log as Parquet: OUT/model=M/date=YYYY-MM-DD/part-*.parquet."""
    with Progress(
        TextColumn(f"[bold]exporting {model}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} rows"),
        TimeRemainingColumn(),
        console=err_console,
    ) as progress:
        task = progress.add_task("export", total=0)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            result = FeedbackLoop(model, tracking_db=db).export(
                out,
                since=since,
                until=until,
                chunk_rows=chunk_rows,
                overwrite=overwrite,
                progress=advance,
            )
        except FeedbackLoopError as exc:
            raise _fail(str(exc)) from exc
    console.print(
        f"wrote {result.rows:,} predictions of [bold]{model}[/] in {len(result.files):,} "
        f"file(s) over {len(result.dates):,} day(s) under {result.path}"
    )


@db_app.command("prune")
def db_prune(
    db: Db = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Only this model (default: all).")
    ] = None,
    retention: Annotated[
        str | None,
        typer.Option(help="Set the model's retention (e.g. 90d) before pruning; needs --model."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="Apply the retention each model declares in this project file."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Drop raw rows older than each model's retention; the summaries behind metrics and
    drift over those hours are kept."""
    from feedback_loop.project import load_loops
    from feedback_loop.store.engine import make_engine, read_transaction
    from feedback_loop.store.migrate import ensure_schema
    from feedback_loop.store.models import list_models

    if retention is not None and model is None:
        raise _fail("--retention needs --model")
    if config is not None and (model is not None or retention is not None):
        raise _fail("--config declares the models and their retention: drop --model/--retention")
    try:
        if config is not None:
            loops = load_loops(config, db)
        elif model is not None:
            loops = [FeedbackLoop(model, tracking_db=db, retention=retention)]
        else:
            engine = make_engine(db)
            ensure_schema(engine)
            with read_transaction(engine) as conn:
                names = [record.name for record in list_models(conn)]
            loops = [FeedbackLoop(name, tracking_db=db) for name in names]
        results = [loop.apply_retention() for loop in loops]
    except (FeedbackLoopError, OSError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    if as_json:
        for result in results:
            sys.stdout.write(json.dumps(result.to_dict()) + "\n")
        return
    table = Table(title="retention")
    for column in ("model", "retention", "horizon", "predictions", "outcomes", "hours kept"):
        table.add_column(column)
    for result in results:
        table.add_row(
            result.model,
            "none" if result.retention is None else str(result.retention),
            "—" if result.horizon is None else result.horizon.strftime("%Y-%m-%d %H:%M"),
            f"{result.predictions_dropped:,}",
            f"{result.outcomes_dropped:,}",
            f"{result.hours_kept:,}",
        )
    console.print(table)


@db_app.command("upgrade")
def db_upgrade(db: Db = None) -> None:
    """Create or migrate the schema to the latest version."""
    from feedback_loop.store.engine import make_engine
    from feedback_loop.store.migrate import upgrade

    engine = make_engine(db)
    revision = upgrade(engine)
    console.print(f"schema at revision [bold]{revision}[/] ({engine.url.render_as_string()})")


@app.command()
def demo(
    db: Annotated[
        str | None, typer.Option("--db", help="Database for the loop's run (default: temporary).")
    ] = None,
    report: Annotated[Path, typer.Option(help="Where to write the HTML report.")] = Path(
        "reports/elec2-demo.html"
    ),
    days: Annotated[int | None, typer.Option(help="Replay only the first N days.")] = None,
) -> None:
    """Replay the bundled Elec2 stream through the whole loop, beside never-retrained and
    fixed-schedule retraining, and write a report."""
    from feedback_loop.demo import run_demo

    run_demo(db, console=console, report=report, days=days)


# -- the HTTP server ----------------------------------------------------------------------------

keys_app = typer.Typer(help="API keys of the HTTP server.", no_args_is_help=True)
webhooks_app = typer.Typer(help="Webhooks the HTTP server sends events to.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(webhooks_app, name="webhooks")


def _server_engine(db: str | None) -> Any:
    """The database of the server, migrated to the current schema."""
    from feedback_loop.store.engine import make_engine
    from feedback_loop.store.migrate import ensure_schema

    engine = make_engine(db)
    ensure_schema(engine)
    return engine


def _now_us() -> int:
    from datetime import UTC, datetime

    from feedback_loop.core.timeutil import to_us

    return to_us(datetime.now(UTC))


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="FEEDBACK_LOOP_HOST", help="Address to bind.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(envvar="FEEDBACK_LOOP_PORT", help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    db: Db = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Accept requests without an API key (trusted hosts).")
    ] = False,
    access_log: Annotated[
        bool, typer.Option(help="Log a line per request (a busy ingest server may not want it).")
    ] = True,
) -> None:
    """Run the REST API (OpenAPI docs at /docs)."""
    from feedback_loop.server.serve import run

    if no_auth:
        err_console.print(
            "[bold red]WARNING: authentication is disabled: anyone who can reach "
            f"{host}:{port} may log, read, promote and roll back models.[/]"
        )
    run(host, port, workers=workers, database_url=db, auth=not no_auth, access_log=access_log)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what the key is for.")],
    scope: Annotated[list[str], typer.Option(help="ingest, read or admin (repeatable).")],
    model: Annotated[
        list[str] | None, typer.Option(help="Limit the key to this model (repeatable).")
    ] = None,
    db: Db = None,
) -> None:
    """Create a key; the key is printed once, alone on standard output."""
    from feedback_loop.server.keys import KeyStore

    engine = _server_engine(db)
    try:
        record, key = KeyStore(engine).create(name, scope, models=model or None, now_us=_now_us())
    except FeedbackLoopError as exc:
        raise _fail(str(exc)) from exc
    # The database is named: a server started over another database would not know the key.
    where = engine.url.render_as_string(hide_password=True)
    err_console.print(
        f"created key {record.id} ({record.name}, prefix {record.prefix}, "
        f"scopes {', '.join(record.scopes)}) in {where}. It is shown once and cannot be "
        "recovered:",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    sys.stdout.write(key + "\n")


@keys_app.command("list")
def keys_list(
    db: Db = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Every key, without secrets."""
    from feedback_loop.server.keys import KeyStore

    records = KeyStore(_server_engine(db)).list_keys()
    if as_json:
        for record in records:
            sys.stdout.write(json.dumps(record.to_dict()) + "\n")
        return
    table = Table(title="API keys")
    for column in ("id", "name", "prefix", "scopes", "models", "created", "last used", "revoked"):
        table.add_column(column)
    for r in records:
        table.add_row(
            str(r.id),
            r.name,
            r.prefix,
            ", ".join(r.scopes),
            "all" if r.models is None else ", ".join(r.models),
            r.created_at.strftime("%Y-%m-%d %H:%M"),
            "" if r.last_used_at is None else r.last_used_at.strftime("%Y-%m-%d %H:%M"),
            "" if r.revoked_at is None else r.revoked_at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="Key id.")], db: Db = None) -> None:
    """Revoke a key: requests with it are refused from now on."""
    from feedback_loop.server.keys import KeyStore

    record = KeyStore(_server_engine(db)).revoke(key_id, now_us=_now_us())
    if record is None:
        raise _fail(f"no API key with id {key_id}")
    console.print(f"revoked key {record.id} ({record.name}, prefix {record.prefix})")


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="http(s) URL to POST events to.")],
    secret: Annotated[
        str | None,
        typer.Option(
            envvar="FEEDBACK_LOOP_WEBHOOK_SECRET",
            help="Signing secret (16+ characters); generated and printed when left out.",
        ),
    ] = None,
    kind: Annotated[
        list[str] | None, typer.Option(help="Event kind to send (repeatable); default: all.")
    ] = None,
    allow_private: Annotated[
        bool,
        typer.Option(
            "--allow-private",
            help="Let this webhook reach loopback, link-local and private addresses "
            "(refused by default: a webhook must not reach the server's own networks).",
        ),
    ] = False,
    db: Db = None,
) -> None:
    """Send events of the given kinds to URL, signed with the secret (stored encrypted with
    the key of $FEEDBACK_LOOP_SECRET_KEY or its key file; see the README)."""
    import secrets as secrets_module

    from feedback_loop.server.settings import Settings
    from feedback_loop.server.webhooks import WebhookStore

    chosen = secret or secrets_module.token_urlsafe(32)
    try:
        # The server's own setting (FEEDBACK_LOOP_WEBHOOK_ALLOW_PRIVATE), read as it reads it.
        settings = Settings.from_env()
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    try:
        hook = WebhookStore(_server_engine(db)).add(
            url,
            chosen,
            kind,
            now_us=_now_us(),
            allow_private=allow_private,
            server_allows_private=settings.webhook_allow_private,
        )
    except FeedbackLoopError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"webhook {hook.id} sends {', '.join(hook.kinds)} to {hook.url}")
    if secret is None:
        err_console.print("signing secret (shown once):")
        sys.stdout.write(chosen + "\n")


@webhooks_app.command("list")
def webhooks_list(
    db: Db = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Every webhook, without secrets."""
    from feedback_loop.server.webhooks import WebhookStore

    hooks = WebhookStore(_server_engine(db)).list_webhooks()
    if as_json:
        for hook in hooks:
            sys.stdout.write(json.dumps(hook.to_dict()) + "\n")
        return
    table = Table(title="webhooks")
    for column in ("id", "url", "kinds", "active", "private"):
        table.add_column(column)
    for h in hooks:
        table.add_row(
            str(h.id),
            h.url,
            ", ".join(h.kinds),
            "yes" if h.active else "no",
            "allowed" if h.allow_private else "no",
        )
    console.print(table)


@webhooks_app.command("remove")
def webhooks_remove(
    webhook_id: Annotated[int, typer.Argument(help="Webhook id.")], db: Db = None
) -> None:
    """Stop sending to a webhook (its delivery history is kept)."""
    from feedback_loop.server.webhooks import WebhookStore

    if not WebhookStore(_server_engine(db)).deactivate(webhook_id):
        raise _fail(f"no webhook with id {webhook_id}")
    console.print(f"webhook {webhook_id} deactivated")


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    webhook: Annotated[int | None, typer.Option(help="Only this webhook.")] = None,
    limit: Annotated[int, typer.Option()] = 50,
    db: Db = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Recent deliveries, newest first, with their status and last error."""
    from feedback_loop.server.outbox import Outbox

    found = Outbox(_server_engine(db)).deliveries(webhook, limit=limit)
    if as_json:
        for d in found:
            row = {
                "id": d.id,
                "webhook_id": d.webhook_id,
                "event_id": d.event_id,
                "status": d.status,
                "attempts": d.attempts,
                "last_error": d.last_error,
                "delivered_at": None if d.delivered_at is None else d.delivered_at.isoformat(),
            }
            sys.stdout.write(json.dumps(row) + "\n")
        return
    table = Table(title="webhook deliveries")
    for column in ("id", "webhook", "event", "status", "attempts", "last error"):
        table.add_column(column)
    for d in found:
        table.add_row(
            str(d.id),
            str(d.webhook_id),
            str(d.event_id),
            d.status,
            str(d.attempts),
            d.last_error or "",
        )
    console.print(table)


if __name__ == "__main__":  # pragma: no cover
    app()
