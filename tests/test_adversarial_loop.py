"""The loop's own paths attacked as a user would: promoting what the gate rejected, rolling
back twice, hostile model names, failures inside a retrain, command trainers on tagged data,
CLI exit codes and reads of unknown models, and a worker that lost its lease."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from test_client_e2e import Served, served  # noqa: F401  (a fixture: real servers)
from test_deploy import _batch, _champion, _serve
from test_deploy import loop as life  # noqa: F401  (a fixture)
from typer.testing import CliRunner

from feedback_loop import (
    FeedbackLoop,
    ManualClock,
    RejectedVersionError,
    UnknownModelError,
    ValidationError,
)
from feedback_loop.cli import app
from feedback_loop.client import Client
from feedback_loop.core.timeutil import to_us
from feedback_loop.deploy.candidates import RetrainOutcome
from feedback_loop.deploy.gate import GateConfig
from feedback_loop.retrain.dataset import DatasetSpec
from feedback_loop.retrain.trainers import as_trainer
from feedback_loop.store import jobs as jobs_store
from feedback_loop.store import models as model_store
from feedback_loop.store.artifacts import LocalArtifactStore
from feedback_loop.store.engine import make_engine, read_transaction, write_transaction
from feedback_loop.store.migrate import ensure_schema
from feedback_loop.worker import ModelJob, Worker

runner = CliRunner()


# -- 18. manual promotion and rollback ------------------------------------------------------


def _rejected(loop: FeedbackLoop, version: int) -> None:
    """Record the gate's rejection of ``version`` as ``retrain`` records it."""
    loop.record_event(
        "gate_rejected",
        reason=f"candidate {version} vs champion 1: failed improvement",
        version=str(version),
        evidence={"passed": False, "checks": [{"name": "improvement", "passed": False}]},
    )


def test_promoting_a_version_the_gate_rejected_needs_force(life, clock) -> None:  # noqa: F811
    rng = np.random.default_rng(1)
    champion = _champion(life, rng)
    _serve(life, clock, champion, _batch(rng, 800, flipped=False), "a")
    life.set_trainer(DummyClassifier(strategy="most_frequent"))
    outcome = life.trigger_retraining("try a worse model")
    assert isinstance(outcome, RetrainOutcome) and not outcome.promoted
    assert outcome.candidate == 2

    with pytest.raises(RejectedVersionError, match="rejected by the gate") as raised:
        life.promote(2)
    assert raised.value.version == 2
    assert life.aliases()["champion"] == 1
    assert not life.events(kinds=["promoted"])  # a refused promotion changes nothing

    life.promote(2, force=True, reason="the gate is wrong here")
    assert life.aliases()["champion"] == 2
    event = life.events(kinds=["promoted"])[0]
    assert event.evidence["forced"]["gate_rejected"].startswith("candidate 2 vs champion 1")


def test_rollback_follows_the_champion_history_backwards(db_url, tmp_path) -> None:
    loop = FeedbackLoop("stack", tracking_db=db_url, artifact_root=str(tmp_path / "a"))
    for weights in range(4):
        loop.register_model({"weights": weights})
    for version in (1, 2, 3):
        loop.promote(version)
    assert loop.rollback() == 2
    assert loop.rollback() == 1  # not back to 3, the version just rolled away from
    with pytest.raises(ValidationError, match="no previous version"):
        loop.rollback()
    assert loop.aliases()["champion"] == 1

    loop.promote(2)
    loop.promote(4)
    assert loop.rollback() == 2
    loop.promote(3)
    assert loop.rollback() == 2  # the rolled-away 4 is not in the history any more
    assert loop.rollback() == 1
    assert [e.evidence["from"] for e in loop.events(kinds=["rolled_back"])] == [2, 3, 4, 2, 3]


def test_rejected_promotion_through_the_server_and_the_client(served: Served) -> None:  # noqa: F811
    local = served.loop("gated", task="binary")
    admin = served.client("gated", key=served.admin)
    first = local.register_model({"weights": [1]})
    second = local.register_model({"weights": [2]})
    local.promote(first)
    _rejected(local, second)

    with pytest.raises(RejectedVersionError, match="rejected by the gate") as raised:
        admin.promote(second)
    assert raised.value.version == second
    answer = httpx.post(
        f"{served.url}/v1/models/gated/promote",
        json={"version": second},
        headers={"Authorization": f"Bearer {served.admin}"},
    )
    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["type"] == "rejected_version" and error["field"] == "version"
    assert "force" in error["message"]
    assert local.aliases()["champion"] == first

    admin.promote(second, force=True)
    assert local.aliases()["champion"] == second
    promoted = local.events(kinds=["promoted"])[0]
    assert promoted.actor == "api:ops" and "forced" in promoted.evidence


def test_cli_promote_of_a_rejected_version_warns_and_needs_force(db_url, tmp_path) -> None:
    loop = FeedbackLoop("cli-gated", tracking_db=db_url, artifact_root=str(tmp_path / "a"))
    loop.register_model({"weights": 1})
    loop.register_model({"weights": 2})
    _rejected(loop, 2)
    args = ["promote", "-m", "cli-gated", "2", "--db", db_url]
    refused = runner.invoke(app, args)
    assert refused.exit_code != 0
    assert "rejected by the gate" in refused.output and "--force" in refused.output
    assert loop.aliases() == {}
    forced = runner.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    assert loop.aliases() == {"champion": 2}


# -- 11. model names and artifact paths -----------------------------------------------------


@pytest.mark.parametrize("name", ["..", ".", "a/b", "..\\x", "a\x01b", "tab\tname", " ", "x" * 201])
def test_hostile_model_names_are_refused_on_every_face(db_url, tmp_path, name: str) -> None:
    with pytest.raises(ValidationError) as raised:
        FeedbackLoop(name, tracking_db=db_url, artifact_root=str(tmp_path / "a"))
    assert raised.value.field == "model_name"
    with pytest.raises(ValidationError) as raised:
        Client("http://127.0.0.1:9", model_name=name)
    assert raised.value.field == "model_name"
    refused = runner.invoke(app, ["metrics", "-m", name, "--db", db_url])
    assert refused.exit_code != 0 and "model_name" in refused.output
    assert not (tmp_path / "a").exists() and not list(tmp_path.parent.glob("*/model.bin"))


@pytest.mark.parametrize("name", ["..", ".", "../../escape", "..\\..\\x", ".hidden", "a\x00b"])
def test_artifacts_stay_under_the_root_whatever_the_name(tmp_path, name: str) -> None:
    root = tmp_path / "root"
    store = LocalArtifactStore(root)
    stored = store.put(name, {"w": 1})
    path = Path(url2pathname(urlsplit(stored.uri).path))
    assert path.is_relative_to(root.resolve())
    assert path.parent.parent.parent == root.resolve()  # ROOT/MODEL/ID/model.bin
    assert not path.parent.parent.name.startswith(".")
    assert LocalArtifactStore.get(stored.uri, stored.sha256, stored.serializer) == {"w": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["root"]


def test_non_ascii_names_and_a_root_with_a_space_load_again(db_url, tmp_path) -> None:
    root = tmp_path / "artifact root with space"
    loop = FeedbackLoop("modèle-ü", tracking_db=db_url, artifact_root=str(root))
    version = loop.register_model({"weights": [1, 2]}, alias="champion")
    record = loop.versions()[0]
    assert record.artifact_uri.startswith("file://") and " " not in record.artifact_uri
    assert loop.load_model(version) == {"weights": [1, 2]}
    again = FeedbackLoop("modèle-ü", tracking_db=db_url, artifact_root=str(root))
    assert again.load_model("champion") == {"weights": [1, 2]}
    assert [p.parent.parent.parent for p in root.rglob("model.bin")] == [root.resolve()]


def test_the_server_refuses_a_dot_dot_model(served: Served) -> None:  # noqa: F811
    answer = httpx.post(
        f"{served.url}/v1/models/%2E%2E/predictions",
        json={"rows": [{"prediction_id": "p1", "prediction": 1}]},
        headers={"Authorization": f"Bearer {served.admin}"},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == "model_name"
    listed = httpx.get(
        f"{served.url}/v1/models", headers={"Authorization": f"Bearer {served.admin}"}
    )
    assert ".." not in [m["name"] for m in listed.json()["models"]]


# -- 12. tags follow the holdout; every retrain failure is recorded --------------------------


def _tagged_loop(db_url: str, tmp_path: Path, clock, n: int = 1200) -> FeedbackLoop:
    """A binary model logged with features and a ``region`` tag, fully labeled, whose
    champion (version 1) always predicts the majority class: a real model beats it."""
    loop = FeedbackLoop(
        "tagged", tracking_db=db_url, clock=clock, task="binary", artifact_root=str(tmp_path / "a")
    )
    rng = np.random.default_rng(7)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = (x1 + 0.5 * x2 + rng.normal(0, 0.3, n) > 0).astype(int)
    start = clock.now() - timedelta(hours=2)
    loop.log_predictions(
        pd.DataFrame(
            {
                "prediction_id": [f"t{i}" for i in range(n)],
                "timestamp": [start + timedelta(seconds=5 * i) for i in range(n)],
                "prediction": [{"label": 1, "score": 0.6}] * n,
                "actual": y,
                "x1": x1,
                "x2": x2,
                "tags": [{"region": ("north", "south", "east")[i % 3]} for i in range(n)],
            }
        )
    )
    features = pd.DataFrame({"x1": x1, "x2": x2})
    dummy = DummyClassifier(strategy="most_frequent").fit(features, y)
    loop.register_model(dummy, features=features, actuals=y, alias="champion")
    loop.set_trainer(
        LogisticRegression(),
        dataset=DatasetSpec(window=timedelta(days=1), holdout=0.25),
        gate=GateConfig(segment_by=("region",), min_support=30),
    )
    return loop


def test_a_segment_gate_on_logged_tags_retrains(db_url, tmp_path, clock) -> None:
    loop = _tagged_loop(db_url, tmp_path, clock)
    outcome = loop.trigger_retraining("accuracy fell")
    assert isinstance(outcome, RetrainOutcome)
    assert outcome.failed is None, outcome.reason
    assert outcome.promoted and outcome.holdout_rows == 300
    segments = next(c for c in outcome.gate["checks"] if c["name"] == "segments")
    assert segments["passed"] and "error" not in segments["detail"], segments
    assert not loop.events(kinds=["retrain_failed"])


def _fail_at(stage: str, monkeypatch: pytest.MonkeyPatch, loop: FeedbackLoop) -> None:
    """Make one stage of the retraining raise."""
    import feedback_loop.deploy.candidates as candidates
    import feedback_loop.deploy.promotion as promotion
    import feedback_loop.deploy.registry as service

    def boom(*_: object, **__: object) -> None:
        raise RuntimeError(f"injected {stage} failure")

    if stage == "train":
        loop.set_trainer(boom)
    elif stage == "register":
        monkeypatch.setattr(service, "register", boom)
    elif stage == "gate":
        monkeypatch.setattr(candidates, "run_gate", boom)
    else:  # the promotion's own transaction fails after moving the champion
        real = promotion.write_event

        def refuse_promoted(conn: object, **values: object) -> int:
            if values["kind"] == "promoted":
                raise RuntimeError("injected promote failure")
            return real(conn, **values)  # type: ignore[arg-type]

        monkeypatch.setattr(promotion, "write_event", refuse_promoted)


@pytest.mark.parametrize("stage", ["train", "register", "gate", "promote"])
def test_any_retrain_failure_ends_with_an_event_and_no_unvetted_alias(
    db_url, tmp_path, clock, monkeypatch, stage: str
) -> None:
    loop = _tagged_loop(db_url, tmp_path, clock, n=600)
    _fail_at(stage, monkeypatch, loop)
    outcome = loop.trigger_retraining("nightly")
    assert isinstance(outcome, RetrainOutcome) and not outcome.promoted
    assert outcome.failed == stage and f"injected {stage} failure" in outcome.reason
    failed = loop.events(kinds=["retrain_failed"])
    assert len(failed) == 1 and failed[0].evidence["stage"] == stage
    assert loop.aliases()["champion"] == 1 and not loop.events(kinds=["promoted"])
    judged = {int(e.version) for e in loop.events(kinds=["gate_passed", "gate_rejected"])}
    unvetted = {v for a, v in loop.aliases().items() if a != "champion"} - judged
    assert not unvetted, loop.aliases()
    if stage == "promote":
        assert outcome.candidate == 2 and failed[0].evidence["candidate"] == 2
    if stage == "gate":  # judged before it is registered (what is registered depends on it)
        assert outcome.candidate is None and len(loop.versions()) == 1
        assert "challenger" not in loop.aliases()


# -- 13. a command trainer on a model logged with tags ---------------------------------------

TRAIN_SCRIPT = """
import sys
import joblib
import pandas as pd
from sklearn.linear_model import LogisticRegression

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
data = pd.read_parquet(args["--data"])
y = data.pop("__label__")
data.pop("__weight__") if "__weight__" in data else None
joblib.dump(LogisticRegression().fit(data, y), args["--out"])
"""


def test_a_command_trainer_trains_a_model_logged_with_tags(db_url, tmp_path, clock) -> None:
    loop = _tagged_loop(db_url, tmp_path, clock, n=600)
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    # One training window (not three): the command runs once for the gate and once for the
    # refit, each a Python start-up that imports pandas and scikit-learn.
    one_window = DatasetSpec(window=timedelta(days=1), holdout=0.25, recent_shares=(1.0,))
    loop.set_trainer(f"{sys.executable} {script} --data {{data}} --out {{out}}", dataset=one_window)
    outcome = loop.trigger_retraining("nightly")
    failed = loop.events(kinds=["retrain_failed"])
    assert not failed, failed[0].reason
    assert isinstance(outcome, RetrainOutcome) and outcome.candidate == 2
    assert loop.load_model(2).coef_.shape == (1, 2)


# -- 15. a worker that lost its lease writes nothing; poison jobs stop ----------------------


def _job(loop: FeedbackLoop) -> jobs_store.Job:
    with read_transaction(loop.engine) as conn:
        return jobs_store.list_jobs(conn, loop.handle.model_state().id)[0]


def test_a_worker_that_lost_its_lease_registers_nothing(db_url, tmp_path, clock) -> None:
    loop = _tagged_loop(db_url, tmp_path, clock, n=600)
    queued = FeedbackLoop("tagged", tracking_db=db_url, clock=clock)
    queued.trigger_retraining("nightly")  # no trainer here: a job for the workers
    started, release = threading.Event(), threading.Event()

    def paused(data: object) -> object:
        started.set()  # the job is claimed and training: now it stalls past its lease
        assert release.wait(120), "the test never released the first worker"
        return as_trainer(LogisticRegression()).train(data)  # type: ignore[arg-type]

    lease, never = timedelta(minutes=1), timedelta(days=1)  # no heartbeat during the test
    first = Worker(
        {"tagged": ModelJob(loop, as_trainer(paused))},
        name="first",
        lease=lease,
        heartbeat_every=never,
        clock=ManualClock(clock.now()),
    )
    later = ManualClock(clock.now() + timedelta(minutes=10))  # the first lease has run out
    second = Worker(
        {"tagged": ModelJob(loop, as_trainer(LogisticRegression()))},
        name="second",
        lease=lease,
        heartbeat_every=never,
        clock=later,
    )
    results: list[dict | None] = []
    stalled = threading.Thread(target=lambda: results.append(first.run_once()))
    stalled.start()
    try:
        assert started.wait(120), "the first worker never started training"
        done = second.run_once()
    finally:
        release.set()
        stalled.join(120)
    assert done is not None and done["status"] == "succeeded", done
    assert results and results[0] is not None
    assert results[0]["status"] == "lost_lease" and results[0]["lost_lease"], results[0]
    assert [v.version for v in loop.versions()] == [1, 2]  # one candidate for one job
    assert len(loop.events(kinds=["gate_passed", "gate_rejected"])) == 1
    assert {e.actor for e in loop.events(kinds=["version_registered"])} >= {"second"}
    assert "first" not in {e.actor for e in loop.events(kinds=["version_registered"])}
    job = _job(loop)
    assert (job.status, job.attempts, job.lease_owner) == ("succeeded", 2, "second")


def test_a_poison_job_stops_after_its_attempts(db_url, tmp_path, clock) -> None:
    loop = _tagged_loop(db_url, tmp_path, clock, n=300)
    loop.set_trainer(None)
    loop.trigger_retraining("nightly")
    model_id = loop.handle.model_state().id
    start, lease = to_us(clock.now()), 60_000_000
    for attempt in range(2):  # two workers claim it and die without a word
        with write_transaction(loop.engine) as conn:
            claimed = jobs_store.claim(
                conn, f"w{attempt}", start + attempt * 2 * lease, lease, model_id
            )
        assert claimed is not None and claimed.attempts == attempt + 1
    worker = Worker(
        {"tagged": ModelJob(loop, as_trainer(LogisticRegression()))},
        name="third",
        clock=ManualClock(clock.now() + timedelta(minutes=10)),
        max_attempts=2,
    )
    assert worker.run_once() is None  # not run a third time
    job = _job(loop)
    assert job.status == "failed" and "2 attempt(s)" in (job.error or "")
    event = loop.events(kinds=["job_failed"])[0]
    assert event.actor == "third" and event.evidence == {
        "job": job.id,
        "attempts": 2,
        "max_attempts": 2,
    }
    assert [v.version for v in loop.versions()] == [1]
    assert worker.run_once() is None


# -- 14. failing CLI commands exit non-zero; reads create nothing ---------------------------


def _models(db_url: str) -> list[str]:
    engine = make_engine(db_url)
    ensure_schema(engine)
    with read_transaction(engine) as conn:
        return [m.name for m in model_store.list_models(conn)]


def test_cli_retrain_and_worker_exit_non_zero_when_training_fails(db_url, tmp_path) -> None:
    _tagged_loop(db_url, tmp_path, ManualClock(datetime.now(UTC)), n=300)  # the CLI's now
    failing = f"{sys.executable} -c 'import sys; sys.exit(3)' {{data}} {{out}}"
    result = runner.invoke(app, ["retrain", "-m", "tagged", "--db", db_url, "--command", failing])
    assert result.exit_code != 0, result.output
    said = " ".join(result.output.split())
    assert "retraining failed: train failed" in said and "exited with 3" in said

    project = tmp_path / "feedback_loop.toml"
    project.write_text(f'[models.tagged]\n[models.tagged.trainer]\ncommand = "{failing}"\n')
    queued = runner.invoke(app, ["retrain", "-m", "tagged", "--db", db_url])
    assert queued.exit_code == 0 and "queued" in queued.output
    worked = runner.invoke(app, ["worker", "--config", str(project), "--db", db_url, "--once"])
    assert worked.exit_code != 0 and "failed" in worked.output, worked.output


READS = [
    ["metrics"],
    ["events"],
    ["drift"],
    ["estimate"],
    ["segments", "--by", "region"],
    ["history"],
    ["report", "--out", "REPORT"],
    ["retrain"],  # a request queued for a model nothing was logged to is a typo, not a job
]


@pytest.mark.parametrize("command", READS, ids=[c[0] for c in READS])
def test_read_commands_on_an_unknown_model_fail_and_create_nothing(
    db_url, tmp_path, command: list[str]
) -> None:
    args = [a.replace("REPORT", str(tmp_path / "r.html")) for a in command]
    result = runner.invoke(app, [*args, "-m", "nonexistent", "--db", db_url])
    assert result.exit_code != 0, result.output
    assert "no model named 'nonexistent'" in result.output
    assert _models(db_url) == []
    assert not (tmp_path / "r.html").exists()


def test_library_reads_of_an_unknown_model_raise_and_write_nothing(db_url, tmp_path) -> None:
    ghost = FeedbackLoop("ghost", tracking_db=db_url, task="binary", artifact_root=str(tmp_path))
    reads = [
        lambda: ghost.get_metrics(),
        lambda: ghost.events(),
        lambda: ghost.versions(),
        lambda: ghost.aliases(),
        lambda: ghost.alias_history(),
        lambda: ghost.check_drift(),
        lambda: ghost.segments(by=["region"]),
        lambda: ghost.get_prediction("p1"),
        lambda: ghost.unmatched_outcomes(),
        lambda: ghost.load_model(1),
    ]
    for read in reads:
        with pytest.raises(UnknownModelError, match="ghost"):
            read()
    with pytest.raises(UnknownModelError, match="ghost"):  # nor does a retraining request
        ghost.trigger_retraining()
    assert ghost.task == "binary"  # the declared task, read without creating the model
    assert FeedbackLoop("ghost2", tracking_db=db_url).task is None
    assert _models(db_url) == []
    ghost.log_prediction(prediction=1, prediction_id="p1")  # a write creates it
    assert _models(db_url) == ["ghost"] and ghost.get_prediction("p1") is not None


# -- review: the champion's rules on every path; bounded declarations and events -------------


def _two_versions(db_url: str, tmp_path: Path, name: str) -> FeedbackLoop:
    loop = FeedbackLoop(name, tracking_db=db_url, artifact_root=str(tmp_path / "a"), task="binary")
    loop.register_model({"weights": 1})
    loop.register_model({"weights": 2})
    loop.promote(1)
    return loop


def test_set_alias_champion_refuses_a_rejected_version_without_force(db_url, tmp_path) -> None:
    loop = _two_versions(db_url, tmp_path, "alias-gated")
    _rejected(loop, 2)
    with pytest.raises(RejectedVersionError, match="rejected by the gate") as raised:
        loop.set_alias("champion", 2)
    assert raised.value.version == 2
    assert raised.value.verdict.startswith("candidate 2 vs champion 1")
    assert loop.aliases()["champion"] == 1
    loop.set_alias("challenger", 2)  # other aliases are the user's own business
    loop.set_alias("champion", 2, force=True, reason="the gate is wrong here")
    assert loop.aliases()["champion"] == 2


@pytest.mark.parametrize("how", ["set_alias", "promote"])
def test_a_user_reason_cannot_pose_as_a_rollback(db_url, tmp_path, how: str) -> None:
    loop = _two_versions(db_url, tmp_path, f"forged-{how}")
    loop.register_model({"weights": 3})
    loop.promote(3)
    with pytest.raises(ValidationError, match="rollback") as raised:
        if how == "set_alias":
            loop.set_alias("champion", 2, reason="rollback: pretend")
        else:
            loop.promote(2, reason="rollback: pretend")
    assert raised.value.field == "reason"
    assert loop.aliases()["champion"] == 3
    loop.promote(2)
    assert loop.rollback() == 3  # the history is intact: 1 -> 3 -> 2
    assert loop.rollback() == 1


@pytest.mark.parametrize(
    ("declared", "field"),
    [
        ({"primary_metric": "accuracy" + "x" * 40}, "primary_metric"),
        ({"label_key": "k" * 201}, "label_key"),
        ({"score_key": "s\x00"}, "score_key"),
    ],
)
def test_declarations_too_long_for_their_columns_are_refused(
    db_url, tmp_path, declared: dict, field: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        FeedbackLoop("declared", tracking_db=db_url, **declared)
    assert raised.value.field == field
    assert _models(db_url) == []


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda loop: loop.record_event("k" * 61, reason="r"), "kind"),
        (lambda loop: loop.record_event("note", reason="r\x00x"), "reason"),
        (lambda loop: loop.record_event("note", reason="r" * 2001), "reason"),
        (lambda loop: loop.record_event("note", reason="r", actor="a" * 201), "actor"),
        (lambda loop: loop.record_event("note", reason="r", version="v" * 101), "version"),
        (lambda loop: loop.set_alias("champion", 2, reason="\ud800"), "reason"),
        (lambda loop: loop.set_alias("a" * 101, 2), "alias"),
        (lambda loop: loop.promote(2, actor="a" * 201), "actor"),
        (lambda loop: loop.rollback(reason="r\x00"), "reason"),
        (lambda loop: loop.trigger_retraining("r" * 2001), "reason"),
        (lambda loop: loop.watch_champion(actor="w" * 201), "actor"),
    ],
    ids=[
        "kind",
        "nul",
        "reason-long",
        "actor",
        "version",
        "surrogate",
        "alias",
        "promote-actor",
        "rollback-nul",
        "retrain-long",
        "watch-actor",
    ],
)
def test_events_and_moves_that_cannot_be_stored_are_refused(db_url, tmp_path, call, field) -> None:
    loop = _two_versions(db_url, tmp_path, "bounded-events")
    loop.promote(2)
    before = (len(loop.events(limit=None)), loop.alias_history())
    with pytest.raises(ValidationError) as raised:
        call(loop)
    assert raised.value.field == field
    assert (len(loop.events(limit=None)), loop.alias_history()) == before  # nothing written


def test_cli_actor_and_reason_are_checked(db_url, tmp_path) -> None:
    _two_versions(db_url, tmp_path, "cli-bounded")
    args = ["promote", "-m", "cli-bounded", "2", "--db", db_url]
    for extra in (["--actor", "a" * 201], ["--reason", "rollback: pretend"]):
        refused = runner.invoke(app, [*args, *extra])
        assert refused.exit_code != 0 and "Traceback" not in refused.output, refused.output
    loop = FeedbackLoop("cli-bounded", tracking_db=db_url)
    assert loop.aliases()["champion"] == 1


@pytest.mark.parametrize("value", [True, 1.5, "", "i" * 201, "a\x00b", "a\ud800b"])
def test_one_prediction_id_rule_for_single_and_batch_calls(db_url, tmp_path, value) -> None:
    loop = FeedbackLoop("ids", tracking_db=db_url, task="binary")
    with pytest.raises(ValidationError) as single:
        loop.log_prediction(value, prediction=1)
    with pytest.raises(ValidationError) as batch:
        loop.log_predictions(
            [{"prediction_id": "ok", "prediction": 1}, {"prediction_id": value, "prediction": 1}]
        )
    assert single.value.field == batch.value.field == "prediction_id"
    assert single.value.message == batch.value.message
    assert batch.value.row == 1
    assert _models(db_url) == []


def test_a_worker_whose_finish_is_not_recorded_reports_a_lost_lease(
    db_url, tmp_path, clock, monkeypatch
) -> None:
    import feedback_loop.worker as worker_module

    loop = _tagged_loop(db_url, tmp_path, clock, n=300)
    loop.set_trainer(None)
    loop.trigger_retraining("nightly")
    model_id = loop.handle.model_state().id
    real = worker_module.retrain

    def retrain_then_lose_the_lease(*args, **kwargs):  # type: ignore[no-untyped-def]
        outcome = real(*args, **kwargs)
        later = to_us(clock.now() + timedelta(hours=1))  # past the lease: another takes it
        with write_transaction(loop.engine) as conn:
            assert jobs_store.claim(conn, "other", later, 60_000_000, model_id) is not None
        return outcome

    monkeypatch.setattr(worker_module, "retrain", retrain_then_lose_the_lease)
    worker = Worker(
        {"tagged": ModelJob(loop, as_trainer(LogisticRegression()))},
        name="first",
        lease=timedelta(minutes=1),
        heartbeat_every=timedelta(days=1),
        clock=ManualClock(clock.now()),
    )
    done = worker.run_once()
    assert done is not None and done["status"] == "lost_lease" and done["lost_lease"], done
    assert _job(loop).lease_owner == "other"


def test_segments_answer_at_most_their_limit_worst_first(db_url, clock) -> None:
    """A continuous feature has a slice per row: the answer is bounded, the worst kept."""
    loop = FeedbackLoop("slices", tracking_db=db_url, clock=clock)
    loop.log_predictions(
        [
            {"prediction_id": f"p{i}", "prediction": i % 2, "actual": int(i % 4 == 0), "x": i}
            for i in range(400)
        ]
    )
    every = loop.segments(window="30d", by=["x"], min_support=1, limit=10_000, record=False)
    assert len(every) == 400
    first = loop.segments(window="30d", by=["x"], min_support=1, record=False)
    assert first == every[:100]
    assert loop.segments(window="30d", by=["x"], min_support=1, limit=5, record=False) == every[:5]
    for bad in (0, 10_001, True, 2.5):
        with pytest.raises(ValidationError) as refused:
            loop.segments(window="30d", by=["x"], min_support=1, limit=bad, record=False)
        assert refused.value.field == "limit"
