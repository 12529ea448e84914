"""Finding (and creating) the shard actors by name: ``shard-<p>`` in the fixed namespace."""

from __future__ import annotations

from typing import Any

import ray

from actors.shard import StudentShard
from learnflow.settings import Settings


def shard_name(settings: Settings, partition: int) -> str:
    return f"{settings.shards.name_prefix}-{partition}"


def shard(settings: Settings, partition: int, topic: str | None = None) -> Any:
    """The handle of partition ``partition``'s shard, created (detached) if it does not exist.

    Shards take no CPU (``num_cpus=0``) and restart without limit; a restarted shard re-runs
    its constructor with empty memory and reloads students lazily (and, with
    ``ingest.mode = "pull"``, reads its partition again from its checkpoint). A call caught by
    a crash is resent to the restarted shard (``shards.task_retries``): every method is safe
    to run twice.
    """
    return (
        ray.remote(StudentShard)
        .options(
            name=shard_name(settings, partition),
            namespace=settings.ray.namespace,
            lifetime="detached",
            get_if_exists=True,
            max_restarts=-1,
            max_task_retries=settings.shards.task_retries,
            num_cpus=0,
        )
        .remote(settings, partition, topic, settings.ingest.mode == "pull")
    )


def ensure_shards(settings: Settings, topic: str | None = None) -> list[Any]:
    """Every partition's shard, created where missing, and wait until each answers."""
    handles = [shard(settings, p, topic) for p in range(settings.kafka.partitions)]
    ray.get([handle.stats.remote() for handle in handles], timeout=120)
    return handles
