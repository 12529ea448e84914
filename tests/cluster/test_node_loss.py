"""Node loss on the cluster profile, with events flowing through the ingest and the API.

Each test streams events onto ``learning.events`` (replication 3, ``min.insync.replicas=2``,
``acks=all``) while a reader thread keeps reading progress and submitting attempts through the
API, then takes nodes down:

- ``kafka``: SIGKILL one Kafka node, start it again 5 s later;
- ``ray``: SIGKILL the whole process tree of the Ray worker node (its raylet, workers and the
  shard host and API replica on it); the host is made anew on the head by the ingest's keeper;
- ``both`` at once.

Then: no event lost and none applied twice (shard memory, Redis and PostgreSQL equal the fold
of each student's events), every accepted submit counted once, progress reads answered all
along (``stale`` while a lost host's partitions had no shard). Printed: the longest any partition's
checkpoint stood still while events kept coming, and events checkpointed per second in the 3 s
before the fault and the 10 s after.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import psutil
import pytest
import ray
import redis

from actors.host import ALIVE_TTL_S
from learnflow import keyring, keys
from learnflow.deadline import Deadline
from learnflow.partitioning import partition_for_student
from learnflow.settings import Settings
from ops.platform import kafka as local_kafka
from ops.platform import processes
from ops.platform import ray as local_ray
from tests.cluster.conftest import FIGURES, host_figures
from tests.integration.pipeline import Stream, assert_matches_fold, make_events, wait_for_lag_zero

SOLUTION = "def sum_to(n):\n    return n * (n + 1) // 2\n"


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything it started, as a lost machine would end them."""
    root = psutil.Process(pid)
    for process in [*root.children(recursive=True), root]:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


class Checkpoints:
    """Every partition's Redis checkpoint, sampled every 0.25 s from a thread."""

    def __init__(self, settings: Settings) -> None:
        self._client = redis.Redis.from_url(settings.redis.url, socket_timeout=5)
        self._names = [
            keys.partition_checkpoint(settings.kafka.events_topic, p)
            for p in range(settings.kafka.partitions)
        ]
        self.samples: list[tuple[float, list[int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            try:
                marks = [int(v) if v is not None else -1 for v in self._client.mget(self._names)]
            except redis.RedisError:
                continue
            self.samples.append((time.monotonic(), marks))

    def __enter__(self) -> Checkpoints:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._client.close()

    def at(self, moment: float) -> list[int]:
        """The last sample taken at or before ``moment``."""
        return [marks for t, marks in self.samples if t <= moment][-1]

    def longest_stall(self, start: float, end: float, partitions: list[int] | None = None) -> float:
        """The longest any of ``partitions`` (default: all) had its checkpoint stand still
        between ``start`` and ``end`` (events kept coming all along)."""
        longest = 0.0
        for p in partitions if partitions is not None else range(len(self.samples[0][1])):
            moved = [start]
            previous = self.at(start)[p]
            for t, marks in self.samples:
                if start < t <= end and marks[p] > previous:
                    moved.append(t)
                    previous = marks[p]
            moved.append(end)
            longest = max(longest, *(b - a for a, b in zip(moved, moved[1:], strict=False)))
        return longest

    def rate(self, start: float, end: float) -> float:
        return (sum(self.at(end)) - sum(self.at(start))) / (end - start)


@dataclass
class ApiActivity:
    """Progress reads of a few students (each about once a second, under the rate limit) and
    now and then a submit of one of them, through the API, from a thread."""

    api: httpx.Client
    tokens: dict[str, str]
    reads: list[tuple[float, str, int, bool]] = field(default_factory=list)
    """(when, student, status, stale) of every progress read."""
    accepted: dict[str, int] = field(default_factory=dict)
    uncertain: dict[str, int] = field(default_factory=dict)
    """Submits whose server was lost with their answer: produced or not, never twice."""
    refused: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        students = list(self.tokens)
        turn = 0
        while not self.stop.is_set():
            for student in students:
                self._read(student)
            self._submit(students[turn % len(students)])
            turn += 1
            self.stop.wait(1.0)

    def headers(self, student: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[student]}"}

    def _read(self, student: str) -> None:
        try:
            read = self.api.get("/progress", headers=self.headers(student))
        except httpx.HTTPError:
            self.reads.append((time.monotonic(), student, 0, False))
            return
        stale = read.status_code == 200 and bool(read.json()["stale"])
        self.reads.append((time.monotonic(), student, read.status_code, stale))

    def _submit(self, student: str) -> None:
        """Retried under one key until answered: a retry is answered once, never graded again."""
        headers = {**self.headers(student), "Idempotency-Key": str(uuid.uuid4())}
        body = {"exercise_id": "sum-to-n", "code": SOLUTION}
        deadline = Deadline.after(30.0)
        while not deadline.expired():
            try:
                answer = self.api.post("/attempts", json=body, headers=headers)
            except httpx.HTTPError:
                time.sleep(0.5)
                continue
            if answer.status_code in (200, 201):
                self.accepted[student] = self.accepted.get(student, 0) + 1
                return
            self.refused.append(answer.status_code)
            if answer.status_code == 409 and "new key" in answer.text:
                break
            time.sleep(1.0)
        self.uncertain[student] = self.uncertain.get(student, 0) + 1


@pytest.fixture
def api_activity(
    two_nodes: Settings, api: httpx.Client, ring: keyring.KeyRing
) -> Iterator[ApiActivity]:
    """Readers on every partition, so that some read a partition of the host that is lost."""
    partitions = two_nodes.kafka.partitions
    students: dict[int, str] = {}
    while len(students) < partitions:
        sid = f"cluster-{uuid.uuid4().hex[:10]}"
        students.setdefault(partition_for_student(sid, partitions), sid)
    tokens = {sid: keyring.mint(ring, two_nodes.auth, sid)[0] for sid in students.values()}
    activity = ApiActivity(api, tokens)
    thread = threading.Thread(target=activity.run, daemon=True)
    thread.start()
    yield activity
    activity.stop.set()
    thread.join(60)


def kill_kafka_node(settings: Settings) -> int:
    node = local_kafka.nodes(settings)[1]
    pid = processes.running_pid(node.files)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    return node.id


def kill_ray_worker(settings: Settings) -> None:
    node = local_ray.worker_nodes(settings)[0]
    pid = processes.running_pid(node.files)
    assert pid is not None
    kill_tree(pid)


@pytest.mark.parametrize("fault", ["kafka", "ray", "both"])
def test_a_lost_node_loses_no_event_and_counts_none_twice(
    fault: str, two_nodes: Settings, api_activity: ApiActivity, api: httpx.Client
) -> None:
    settings = two_nodes
    events = make_events(students=3000, total=60_000, seed=len(fault))
    head = ray.get_runtime_context().get_node_id()  # the driver runs on the head's node
    (on_worker,) = [f for f in host_figures(settings) if f["node_id"] != head]
    lost_partitions = list(on_worker["partitions"]) if fault != "kafka" else []
    with Checkpoints(settings) as checkpoints:
        with Stream(settings, events, chunk=1000, pause_s=0.25) as stream:
            time.sleep(4.0)
            began = time.monotonic()
            if lost_partitions:
                kill_ray_worker(settings)
            if fault != "ray":
                kill_kafka_node(settings)
                time.sleep(5.0)
                local_kafka.start(settings, Deadline.after(120))
        ended = time.monotonic()
        assert stream.error is None, stream.error
        assert len(stream.deliveries) == len(events)
        assert ended - began > 15.0, "the stream ended before the fault could show"
        wait_for_lag_zero(settings, timeout_s=300)
        stall_s = checkpoints.longest_stall(began, ended)
        lost_stall_s = checkpoints.longest_stall(began, ended, lost_partitions)
        before = checkpoints.rate(began - 3.0, began)
        during = checkpoints.rate(began, began + 10.0)

    assert_matches_fold(settings, events, stream.deliveries)
    api_activity.stop.set()
    failed = [read for read in api_activity.reads if read[2] != 200]
    assert not failed, failed[:5]
    if lost_partitions:
        # Between the lost host's last "alive" running out and its successor's first, a
        # read of its partitions says stale; after, it does not.
        lost = [
            read for read in api_activity.reads
            if partition_for_student(read[1], settings.kafka.partitions) in lost_partitions
        ]  # fmt: skip
        window = [
            read for read in lost
            if began + ALIVE_TTL_S + 0.5 <= read[0] <= began + lost_stall_s - 0.5
        ]  # fmt: skip
        assert not window or any(read[3] for read in window), window
        assert not lost[-1][3], "reads still say stale after the shard came back"
    assert_submits_counted_once(api, api_activity)
    FIGURES.append(
        f"{fault}: the longest a partition's checkpoint stood still {stall_s:.1f} s; "
        f"{before:,.0f} events/s checkpointed in the 3 s before the fault, {during:,.0f} in "
        f"the 10 s after; {len(api_activity.reads)} progress reads, all answered, "
        f"{sum(read[3] for read in api_activity.reads)} of them stale; "
        f"{sum(api_activity.accepted.values())} submits accepted, "
        f"{sum(api_activity.uncertain.values())} lost with their server, "
        f"{len(api_activity.refused)} answers to retry ({sorted(set(api_activity.refused))})"
    )


def assert_submits_counted_once(api: httpx.Client, activity: ApiActivity) -> None:
    """Each student's progress counts every accepted submit once, and at most once each submit
    whose answer was lost."""
    assert sum(activity.accepted.values()) > 0
    deadline = Deadline.after(60)
    for student in activity.tokens:
        least = activity.accepted.get(student, 0)
        most = least + activity.uncertain.get(student, 0)
        while True:
            answer = api.get("/progress", headers=activity.headers(student))
            if answer.status_code == 429 and not deadline.expired():
                # The activity's reads count against the student's rate limit too.
                time.sleep(min(float(answer.headers["Retry-After"]), deadline.remaining()))
                continue
            assert answer.status_code == 200, (student, answer.status_code, answer.text)
            attempts = answer.json()["components"]["loops"]["attempts"]
            if least <= attempts <= most or deadline.expired():
                break
            time.sleep(1.0)
        assert least <= attempts <= most, (student, attempts, least, most)
