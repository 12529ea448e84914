"""Finding (and creating) the shard hosts by name: ``shard-<i>`` in the fixed namespace.

Host ``i`` holds every partition ``p`` with ``p % shards.hosts == i`` (see
:mod:`actors.host`); callers name the partition in every call.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.host import ShardHost, host_of, hosts
from learnflow.settings import Settings


def host_name(settings: Settings, index: int) -> str:
    return f"{settings.shards.name_prefix}-{index}"


def shard_name(settings: Settings, partition: int) -> str:
    """The name of the actor that holds ``partition``."""
    return host_name(settings, host_of(settings, partition))


def host_names(settings: Settings) -> list[str]:
    return [host_name(settings, i) for i in range(hosts(settings))]


def host(settings: Settings, index: int, topic: str | None = None) -> Any:
    """The handle of host ``index``, created (detached) if it does not exist.

    Hosts take no CPU (``num_cpus=0``) and restart without limit; a restarted host re-runs
    its constructor with empty shards, which reload students lazily and read their partitions
    again from their checkpoints. A call caught by a crash is resent to the restarted host
    (``shards.task_retries``): every method is safe to run twice.

    A new host ``i`` is pinned to the ``i``-th of the cluster's live nodes (round robin, by
    node id): a crashed host restarts there. When that node is lost, Ray cannot restart the
    host anywhere and ends it; the next call to this function (the ingest's keeper makes one
    within seconds) makes it anew on a node that is alive. Pinned rather than asked softly: a
    soft request let Ray put both hosts on one node now and then.
    """
    name = host_name(settings, index)
    try:
        return ray.get_actor(name, namespace=settings.ray.namespace)
    except ValueError:  # not made yet
        pass
    nodes = sorted(node["NodeID"] for node in ray.nodes() if node["Alive"])  # type: ignore[no-untyped-call]
    placement = NodeAffinitySchedulingStrategy(nodes[index % len(nodes)], soft=False)
    return (
        ray.remote(ShardHost)
        .options(
            name=name,
            namespace=settings.ray.namespace,
            lifetime="detached",
            get_if_exists=True,
            max_restarts=-1,
            max_task_retries=settings.shards.task_retries,
            num_cpus=0,
            scheduling_strategy=placement,
        )
        .remote(settings, index, topic)
    )


def shard(settings: Settings, partition: int, topic: str | None = None) -> Any:
    """The handle of the host that holds ``partition`` (its methods take the partition first)."""
    return host(settings, host_of(settings, partition), topic)


def ensure_shards(settings: Settings, topic: str | None = None) -> list[Any]:
    """Every host, created where missing, and wait until each answers."""
    handles = [host(settings, i, topic) for i in range(hosts(settings))]
    ray.get([handle.pid.remote() for handle in handles], timeout=120)
    return handles


def kill_shards(settings: Settings) -> None:
    """Remove every host of ``settings``' namespace (tests and benchmarks on their own topic)."""
    for name in host_names(settings):
        try:
            ray.kill(ray.get_actor(name, settings.ray.namespace))
        except ValueError:  # never made, or gone already
            pass
