"""Schemathesis against the deployed API's own OpenAPI document: no input may cause a 5xx.

Each operation is fuzzed on its own with a token for a fresh student, so the per-student rate
limit leaves room for the generated requests to reach the handlers.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from learnflow import keyring
from learnflow.settings import Settings

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def operations(settings: Settings) -> list[tuple[str, str]]:
    document = httpx.get(f"{settings.serve.url}/openapi.json", timeout=10).json()
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]


def test_openapi_lists_the_v1_operations(settings: Settings) -> None:
    found = set(operations(settings))
    for expected in [
        ("GET", "/api/v1/exercises"),
        ("GET", "/api/v1/exercises/{exercise_id}"),
        ("POST", "/api/v1/attempts"),
        ("GET", "/api/v1/progress"),
        ("GET", "/api/v1/progress/history"),
    ]:
        assert expected in found


@pytest.mark.timeout(900)
def test_no_input_causes_a_server_error(settings: Settings, tmp_path: Path) -> None:
    ring = keyring.load(settings.auth.keys_dir)
    token, _ = keyring.mint(ring, settings.auth, f"fuzz-{uuid.uuid4().hex[:10]}")
    run = subprocess.run(
        [
            str(SCHEMATHESIS), "run", f"{settings.serve.url}/openapi.json",
            "--checks", "not_a_server_error",
            "--header", f"Authorization: Bearer {token}",
            "--max-examples", "20",
            "--phases", "examples,coverage,fuzzing",
            "--generation-deterministic",
            "--request-timeout", "20",
            "--report", "junit", "--report-dir", str(tmp_path / "reports"),
        ],
        capture_output=True, text=True, timeout=800, check=False,
    )  # fmt: skip
    summary = run.stdout[-4000:] + run.stderr[-1000:]
    assert run.returncode == 0, summary
    assert " passed" in run.stdout and "failed" not in run.stdout.split("Test cases:")[-1], summary
