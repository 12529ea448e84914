"""Finding (and creating) the shard hosts by name: ``shard-<i>`` in the fixed namespace.

Host ``i`` holds every partition ``p`` with ``p % shards.hosts == i`` (see
:mod:`actors.host`); callers name the partition in every call.
"""

from __future__ import annotations

from typing import Any

import ray

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
    """
    return (
        ray.remote(ShardHost)
        .options(
            name=host_name(settings, index),
            namespace=settings.ray.namespace,
            lifetime="detached",
            get_if_exists=True,
            max_restarts=-1,
            max_task_retries=settings.shards.task_retries,
            num_cpus=0,
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
