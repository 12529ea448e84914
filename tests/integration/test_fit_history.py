"""Fitting the model from the attempt history as a Ray job on the running cluster."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from ray.job_submission import JobStatus, JobSubmissionClient

from learnflow import keyring, param_file, synthetic
from learnflow.bkt import BKTParams
from learnflow.settings import Settings
from serve.grading import catalog
from tests.integration.commands import cli
from tests.integration.pipeline import wait_for_lag_zero

EXERCISE = catalog.load()["invert-dict"]
COMPONENT = "dicts"  # only this test submits exercises on it: its history is this test's
SOLUTION, WRONG = EXERCISE.solution, EXERCISE.starter
TRUTH = BKTParams(p_init=0.5, p_learn=0.3, p_guess=0.3, p_slip=0.05)  # far from the defaults
STUDENTS, ATTEMPTS = 80, 10


def submit(api: httpx.Client, token: str, code: str) -> httpx.Response:
    """One graded attempt through the API, waiting out a busy grader's Retry-After."""
    for _ in range(50):
        answer = api.post(
            "/attempts",
            json={"exercise_id": EXERCISE.id, "code": code},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
        )
        if answer.status_code != 503:
            return answer
        time.sleep(float(answer.headers.get("Retry-After", "1")))
    raise AssertionError("the grader stayed busy")


def simulated_students(api: httpx.Client, settings: Settings, ring: keyring.KeyRing) -> list[str]:
    """Students of a hidden BKT model, each submitting ``ATTEMPTS`` times through the API: the
    right solution when the model says they answer correctly, a wrong one otherwise."""
    seqs = synthetic.generate({COMPONENT: TRUTH}, STUDENTS, ATTEMPTS, seed=11)
    prefix = uuid.uuid4().hex[:6]

    def student(i: int) -> str:
        sid = f"fit-{prefix}-{i:03d}"
        token = keyring.mint(ring, settings.auth, sid)[0]
        for answer in seqs.obs[seqs.starts[i] : seqs.starts[i + 1]]:
            graded = submit(api, token, SOLUTION if answer else WRONG)
            assert graded.status_code == 201, graded.text
            assert graded.json()["passed"] == bool(answer)
        return sid

    with ThreadPoolExecutor(4) as pool:  # each student's attempts in order
        return list(pool.map(student, range(seqs.n_sequences)))


async def _version_row(settings: Settings, version: int) -> asyncpg.Record:
    conn = await asyncpg.connect(settings.postgres.dsn())
    try:
        row: asyncpg.Record = await conn.fetchrow(
            "SELECT v.source, v.data_from, v.data_to, v.metrics::text AS metrics, "
            "p.n_students, p.n_attempts, p.metrics::text AS component_metrics "
            "FROM model_versions v JOIN model_parameters p USING (version) "
            "WHERE version = $1",
            version,
        )
        return row
    finally:
        await conn.close()


def test_a_fit_from_history_runs_as_a_ray_job_and_stores_a_version_that_can_be_published(
    settings: Settings,
    api: httpx.Client,
    ring: keyring.KeyRing,
    tmp_path: Path,
    back_to_defaults: None,
) -> None:
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    students = simulated_students(api, settings, ring)
    wait_for_lag_zero(settings)
    out = tmp_path / "fitted.json"

    done = cli(
        "fit", "--from-history", "--components", COMPONENT, "--out", str(out),
        "--forgets", "never", "--restarts", "2", "--since", f"{since:%Y-%m-%dT%H:%M:%S}",
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    job = re.search(r"submitted Ray job (\S+)", done.stdout)
    assert job, done.stdout
    assert "fitted 1/1 components" in done.stdout  # the job's progress, streamed back
    assert f"{COMPONENT}: read " in done.stdout  # and its task's
    info = JobSubmissionClient(settings.ray.dashboard_url).get_job_info(job[1])
    assert info.status == JobStatus.SUCCEEDED and info.metadata == {"learnflow": "fit"}
    document = param_file.read(out)
    fitted = document.components[COMPONENT]
    assert not fitted.fallback and abs(fitted.p_slip - TRUTH.p_slip) < 0.1
    row = asyncio.run(_version_row(settings, document.version))
    assert row["source"] == f"history fit, Ray job {job[1]}"
    assert row["data_from"] < row["data_to"]
    assert 52 <= row["n_students"] <= 76  # a fifth of the students is held out
    overall = json.loads(row["metrics"])
    assert overall["answers"] > 0 and overall["auc"] > 0.6, overall
    assert json.loads(row["component_metrics"])["answers"] == overall["answers"]

    # Evaluated against the live version (the defaults) on the held-out students.
    report = tmp_path / "report"
    scored = cli(
        "evaluate", "--version", str(document.version), "--components", COMPONENT,
        "--since", f"{since:%Y-%m-%dT%H:%M:%S}",
        "--out", str(report),
    )  # fmt: skip
    assert scored.returncode == 0, scored.stdout + scored.stderr
    assert f"version {document.version} against 0" in scored.stdout
    page = (report / "report.html").read_text()
    assert f"Version {document.version} predicts held-out answers better than version 0" in page
    assert (report / "calibration.png").stat().st_size > 10_000
    assert (report / "curves.png").stat().st_size > 10_000

    # Published, the student's next attempt through the API is applied with it, and the
    # progress answer says so.
    assert cli("model", "publish", str(document.version)).returncode == 0
    token = keyring.mint(ring, settings.auth, students[-1])[0]
    for _ in range(30):  # the shards switch within mastery.model_poll_s
        submitted = submit(api, token, SOLUTION)
        assert submitted.status_code == 201, submitted.text
        offset = submitted.json()["event"]["offset"]
        seen = api.get(
            "/progress", params={"min_offset": offset}, headers={"Authorization": f"Bearer {token}"}
        ).json()
        assert seen["caught_up"]
        if seen["model_version"] == document.version:
            break
    else:
        pytest.fail(f"attempts never applied with version {document.version}")
    assert seen["components"][COMPONENT]["attempts"] > ATTEMPTS


def test_a_fit_with_nothing_to_fit_fails_with_the_reason(tmp_path: Path) -> None:
    done = cli(
        "fit", "--from-history", "--components", "no-such-component", "--out",
        str(tmp_path / "none.json"),
    )  # fmt: skip

    assert done.returncode == 1
    assert "nothing to fit" in done.stdout + done.stderr
    assert not (tmp_path / "none.json").exists()
