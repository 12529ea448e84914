"""Submitting the platform's jobs to the Ray cluster and following them to the end."""

from __future__ import annotations

import asyncio
import shlex
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from learnflow.exceptions import LearnFlowError
from learnflow.settings import Settings


class JobFailedError(LearnFlowError):
    """A submitted job ended without success; its logs are on the dashboard's Jobs page."""


def submission_id(kind: str) -> str:
    """A readable, unique id for the dashboard's Jobs page."""
    return f"learnflow-{kind}-{datetime.now(UTC):%Y%m%d-%H%M%S-%f}"


def submit(settings: Settings, submission: str, module: str, args: Sequence[str]) -> None:
    """Start ``python -m module args…`` as the Ray job ``submission``."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(settings.ray.dashboard_url)
    command = [sys.executable, "-m", module, *args]
    client.submit_job(
        entrypoint=shlex.join(command),
        submission_id=submission,
        metadata={"learnflow": submission.split("-")[1]},
    )


def follow(settings: Settings, submission: str, line: Callable[[str], None]) -> None:
    """Pass every log line of the job to ``line`` until it ends; raise unless it succeeded."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(settings.ray.dashboard_url)

    async def tail() -> None:
        async for chunk in client.tail_job_logs(submission):
            for text in chunk.splitlines():
                line(text)

    asyncio.run(tail())
    info = client.get_job_info(submission)
    if info.status != JobStatus.SUCCEEDED:
        raise JobFailedError(
            f"job {submission} ended {info.status}: {info.message or 'see its logs'} "
            f"({settings.ray.dashboard_url}/#/jobs/{submission})"
        )
