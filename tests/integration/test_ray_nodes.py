"""A second Ray node on this host, joined to the platform's head: shard hosts are placed on it
too, and a host whose node loses its whole process tree comes back on the surviving node and
reads its partitions again from their checkpoints.

The node takes ports from 20000 (``local.ray_worker_port_base``); its hosts live in a namespace
and read a topic of their own.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable, Iterator

import psutil
import pytest
import ray

from actors import registry
from learnflow.deadline import Deadline
from learnflow.settings import Settings
from ops.platform import processes
from ops.platform import ray as local_ray


def alive_nodes() -> set[str]:
    return {node["NodeID"] for node in ray.nodes() if node["Alive"]}


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything it started, as a lost machine would end them."""
    root = psutil.Process(pid)
    for process in [*root.children(recursive=True), root]:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


@pytest.fixture
def two_nodes(settings: Settings, ray_cluster: None) -> Iterator[Settings]:
    with_node = settings.model_copy(
        update={"local": settings.local.model_copy(update={"ray_worker_nodes": 1})}
    )
    before = alive_nodes()
    node = local_ray.worker_nodes(with_node)[0]
    local_ray.start_worker(with_node, node, Deadline.after(120))
    try:
        deadline = Deadline.after(60)
        while len(alive_nodes() - before) < 1 and not deadline.expired():
            time.sleep(0.2)
        assert len(alive_nodes() - before) == 1, "the second node did not join"
        yield with_node
    finally:
        local_ray.stop_worker(node, Deadline.after(30))


def test_a_host_on_a_lost_node_comes_back_on_the_other(
    two_nodes: Settings, make_topic: Callable[[int], str]
) -> None:
    topic = make_topic(two_nodes.kafka.partitions)
    mine = two_nodes.model_copy(
        update={
            "kafka": two_nodes.kafka.model_copy(update={"events_topic": topic}),
            "ray": two_nodes.ray.model_copy(
                update={"namespace": f"learnflow-test-nodes-{uuid.uuid4().hex[:6]}"}
            ),
        }
    )
    head = ray.get_runtime_context().get_node_id()  # the driver runs on the head's node
    try:
        handles = registry.ensure_shards(mine)
        placed = [ray.get(h.figures.remote(), timeout=60) for h in handles]
        # Placed round robin, softly: Ray may put both on the new node when the head's worker
        # pool is busy, never both on the head.
        assert any(f["node_id"] != head for f in placed), placed
        lost = next(f for f in placed if f["node_id"] != head)
        node = local_ray.worker_nodes(mine)[0]
        pid = processes.running_pid(node.files)
        assert pid is not None

        began = time.monotonic()
        kill_tree(pid)
        handle = handles[lost["host"]]
        figures: dict[str, object] = {}
        deadline = Deadline.after(90)
        while not deadline.expired():
            try:
                figures = ray.get(handle.figures.remote(), timeout=5)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                time.sleep(0.2)
                continue
            if figures["node_id"] == head:
                break
        recovered_s = time.monotonic() - began
        assert figures.get("node_id") == head, figures
        assert figures["pid"] != lost["pid"]
        partition = lost["partitions"][0]
        stats = ray.get(handle.stats.remote(partition), timeout=60)
        assert stats["partition"] == partition and stats["checkpointed_offset"] == -1
        print(f"host {lost['host']} answered on the head {recovered_s:.1f} s after its node died")  # noqa: T201
    finally:
        registry.kill_shards(mine)
