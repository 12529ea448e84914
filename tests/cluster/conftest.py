"""Fixtures of the cluster profile's tests: the platform ``learnflow up --cluster`` starts
(three Kafka nodes, a Ray head and a Ray worker node), nothing faked.

``make test-cluster`` stops the single-node platform, starts this one, runs these tests and
stops it again. If the profile is not the one running, every test fails at once and says so.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from learnflow.deadline import Deadline
from learnflow.settings import Settings
from ops.platform import kafka, profile, stack
from ops.platform import ray as local_ray

# The session's settings, Ray connection, API client and JWT keys, as the integration tests
# have them (importing them points Ray at the local cluster's token before Ray is imported:
# Ray and what imports it are imported inside the functions here).
from tests.integration.conftest import api, ray_cluster, redis_client, ring, settings

__all__ = ["api", "ray_cluster", "redis_client", "ring", "settings"]

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="session", autouse=True)
def cluster_is_up(settings: Settings) -> None:
    if profile.active() != "cluster":
        pytest.fail(
            "the cluster profile is not running: `make test-cluster` starts it "
            "(or `learnflow down`, then `learnflow up --cluster`)",
            pytrace=False,
        )
    down = [row.name for row in stack.status(settings) if not row.running]
    if down:
        pytest.fail(f"the cluster profile is not fully up: {', '.join(down)}", pytrace=False)
    assert len(kafka.nodes(settings)) == 3
    assert len(local_ray.worker_nodes(settings)) == 1


FIGURES: list[str] = []
"""What the fault tests measured, printed at the end of the session."""


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("cluster profile: figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def alive_nodes() -> list[str]:
    import ray

    return sorted(node["NodeID"] for node in ray.nodes() if node["Alive"])


def host_figures(settings: Settings) -> list[dict[str, Any]]:
    import ray

    from actors import registry

    handles = registry.ensure_shards(settings)
    return list(ray.get([h.figures.remote() for h in handles], timeout=60))


@pytest.fixture
def two_nodes(settings: Settings, ray_cluster: None) -> Iterator[Settings]:
    """Both Ray nodes up and the platform's shard hosts on both: a node a test took down is
    started again, and hosts that all live on one node are made anew (a host stays where it
    was remade after a node loss; a new one goes to the ``i``-th live node)."""
    import ray

    from actors import registry

    node = local_ray.worker_nodes(settings)[0]
    local_ray.start_worker(settings, node, Deadline.after(120))
    deadline = Deadline.after(60)
    while len(alive_nodes()) < 2 and not deadline.expired():
        time.sleep(0.2)
    assert len(alive_nodes()) == 2, "the worker node did not join"
    if len({f["node_id"] for f in host_figures(settings)}) < 2:
        registry.kill_shards(settings)
        deadline = Deadline.after(60)
        while not deadline.expired():
            try:
                if len({f["node_id"] for f in host_figures(settings)}) == 2:
                    break
            except ray.exceptions.RayActorError:  # a killed host not yet gone
                pass
            time.sleep(0.5)
        assert len({f["node_id"] for f in host_figures(settings)}) == 2, "hosts not spread"
    yield settings
    local_ray.start_worker(settings, node, Deadline.after(120))
