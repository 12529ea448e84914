"""A student, as locust sees one: logs in with a minted token, browses exercises, submits
correct and wrong solutions with idempotency keys, and reads progress after each submit with
``min_offset`` (read-your-writes).

Run it with ``make loadtest`` (headless, bounded, reports under ``.run/loadtest/``).
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from locust import HttpUser, between, task

from learnflow import keyring
from learnflow.settings import Settings
from serve.grading import catalog

_SETTINGS = Settings()
_RING = keyring.load(_SETTINGS.auth.keys_dir)
_EXERCISES = list(catalog.load().values())


class Student(HttpUser):
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.student_id = f"locust-{uuid.uuid4().hex[:12]}"
        token, _ = keyring.mint(_RING, _SETTINGS.auth, self.student_id)
        self.client.headers["Authorization"] = f"Bearer {token}"
        self.last_offset: int | None = None

    @task(2)
    def browse(self) -> None:
        listing = self.client.get("/api/v1/exercises", name="/api/v1/exercises").json()
        chosen = random.choice(listing["exercises"])
        self.client.get(f"/api/v1/exercises/{chosen['id']}", name="/api/v1/exercises/{id}")

    @task(3)
    def submit(self) -> None:
        exercise = random.choice(_EXERCISES)
        correct = random.random() < 0.6
        code = exercise.solution if correct else exercise.starter
        key = str(uuid.uuid4())
        body = {"exercise_id": exercise.id, "code": code}
        with self._post_attempt(body, key, "/api/v1/attempts") as response:
            if response.status_code != 201:
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return
            answer: dict[str, Any] = response.json()
            if answer["passed"] != correct:
                response.failure(f"{exercise.id}: expected passed={correct}, got {answer}")
                return
            self.last_offset = answer["event"]["offset"]
        if random.random() < 0.1:  # a client retry: must replay, never grade again
            with self._post_attempt(body, key, "/api/v1/attempts (retry)") as retry:
                if retry.status_code != 200 or retry.json() != answer:
                    retry.failure(f"retry got {retry.status_code}, not the first answer")
        self.progress()

    def _post_attempt(self, body: dict[str, str], key: str, name: str) -> Any:
        return self.client.post(
            "/api/v1/attempts",
            json=body,
            headers={"Idempotency-Key": key},
            name=name,
            catch_response=True,
        )

    @task(2)
    def progress(self) -> None:
        params = {} if self.last_offset is None else {"min_offset": self.last_offset}
        with self.client.get(
            "/api/v1/progress", params=params, name="/api/v1/progress", catch_response=True
        ) as response:
            if response.status_code == 200 and params and not response.json()["caught_up"]:
                response.failure("progress did not reach the submitted offset in time")

    @task(1)
    def history(self) -> None:
        self.client.get("/api/v1/progress/history", name="/api/v1/progress/history")
