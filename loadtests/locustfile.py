"""Students, as locust sees them, at a student's pace.

Each student logs in with a minted token and keeps a page open: it reads its progress about
every 5 s, submits an attempt every 20–40 s (60 % correct solutions, the rest the starter code,
now and then a client retry with the same idempotency key), reads progress right after each
submit with ``min_offset`` (read-your-writes), and browses the exercises now and then. Every
answer is checked: status, body, verdict, replay, caught-up reads.

A full grader answers 503 with ``Retry-After``: the student waits that long and resubmits with
the same key, as the web editor does; those answers are counted under their own name and are not
failures. Anything else unexpected is a failure.

Run it with ``make loadtest STUDENTS=1000 DURATION=3m`` (headless, CSV and HTML under
``.run/loadtest/``).
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser

from learnflow import keyring
from learnflow.settings import Settings
from serve.grading import catalog

_SETTINGS = Settings()
_RING = keyring.load(_SETTINGS.auth.keys_dir)
_EXERCISES = list(catalog.load().values())
SUBMIT_EVERY_S = (20.0, 40.0)
BROWSE_SHARE = 0.1
BUSY_RETRIES = 5


class Student(FastHttpUser):
    wait_time = between(4.0, 6.0)  # an open page reads progress about every 5 s

    def on_start(self) -> None:
        self.student_id = f"locust-{uuid.uuid4().hex[:12]}"
        token, _ = keyring.mint(_RING, _SETTINGS.auth, self.student_id, ttl_s=6 * 3600)
        self.auth = {"Authorization": f"Bearer {token}"}
        self.last_offset: int | None = None
        # Students arrive mid-exercise: the first submit comes anywhere in the first interval.
        self.next_submit = time.monotonic() + random.uniform(0, SUBMIT_EVERY_S[1])

    @task
    def tick(self) -> None:
        now = time.monotonic()
        if now >= self.next_submit:
            self.next_submit = now + random.uniform(*SUBMIT_EVERY_S)
            self.submit()
        elif random.random() < BROWSE_SHARE:
            self.browse()
        else:
            self.progress()

    def browse(self) -> None:
        with self.client.get(
            "/api/v1/exercises", name="/api/v1/exercises", catch_response=True
        ) as listing:
            exercises = listing.json().get("exercises") if listing.status_code == 200 else None
            if not exercises:
                listing.failure(f"{listing.status_code}: {listing.text[:200]}")
                return
        chosen = random.choice(exercises)
        with self.client.get(
            f"/api/v1/exercises/{chosen['id']}", name="/api/v1/exercises/{id}", catch_response=True
        ) as detail:
            if detail.status_code != 200 or detail.json().get("id") != chosen["id"]:
                detail.failure(f"{detail.status_code}: {detail.text[:200]}")

    def submit(self) -> None:
        exercise = random.choice(_EXERCISES)
        correct = random.random() < 0.6
        body = {
            "exercise_id": exercise.id,
            "code": exercise.solution if correct else exercise.starter,
        }
        key = str(uuid.uuid4())
        answer = self._submit(body, key, "/api/v1/attempts")
        if answer is None:
            return
        if answer["passed"] != correct:
            self._fail_event(f"{exercise.id}: expected passed={correct}, got {answer['status']}")
            return
        self.last_offset = answer["event"]["offset"]
        self.progress("/api/v1/progress (after submit)")
        if random.random() < 0.1:  # a client retry: must replay, never grade again
            with self.client.post(
                "/api/v1/attempts", json=body, headers={**self.auth, "Idempotency-Key": key},
                name="/api/v1/attempts (retry)", catch_response=True,
            ) as retry:  # fmt: skip
                if retry.status_code != 200 or retry.json() != answer:
                    retry.failure(f"retry got {retry.status_code}, not the first answer")

    def _submit(self, body: dict[str, str], key: str, name: str) -> dict[str, Any] | None:
        headers = {**self.auth, "Idempotency-Key": key}
        for attempt in range(BUSY_RETRIES + 1):
            label = name if attempt == 0 else f"{name} (after 503)"
            with self.client.post(
                "/api/v1/attempts", json=body, headers=headers, name=label, catch_response=True
            ) as response:
                if response.status_code == 201:
                    return dict(response.json())
                retry_after = response.headers.get("Retry-After")
                if response.status_code == 503 and retry_after and attempt < BUSY_RETRIES:
                    response.success()  # backpressure, answered at once: wait and resubmit
                    time.sleep(float(retry_after) * random.uniform(1.0, 1.5))
                    continue
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return None
        return None

    def progress(self, name: str = "/api/v1/progress") -> None:
        """The student's progress; after a submit, waiting until that attempt counts."""
        query = "" if self.last_offset is None else f"?min_offset={self.last_offset}"
        with self.client.get(
            f"/api/v1/progress{query}", headers=self.auth, name=name, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")
            elif query and not response.json()["caught_up"]:
                response.failure("progress did not reach the submitted offset in time")

    def _fail_event(self, message: str) -> None:
        self.environment.events.request.fire(
            request_type="CHECK", name="grade verdict", response_time=0, response_length=0,
            exception=AssertionError(message), context={},
        )  # fmt: skip
