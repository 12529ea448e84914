"""The local platform's profiles: one of everything (the default), or ``cluster``.

``cluster`` (``learnflow up --cluster``) runs on this host what a deployment spreads over
machines: three Kafka KRaft nodes (every LearnFlow partition on three, ``min.insync.replicas=2``,
producers wait for ``acks=all``), a Ray head and a second Ray node (its own process tree), the
shard hosts pinned round robin to the two nodes and the two API replicas one on each (Serve's
``max_replicas_per_node=1``), Redis and PostgreSQL. Its files live under ``.run/cluster``, apart
from the single-node platform's, and its settings in :data:`PROFILE_FILE`, which every
``Settings()`` reads until ``learnflow down`` removes it.
"""

from __future__ import annotations

from learnflow.settings import PROFILE_FILE, Settings
from ops.platform import kafka
from ops.platform.exceptions import PlatformError

__all__ = ["CLUSTER", "active", "clear", "describe", "use_cluster"]

CLUSTER = {
    "LEARNFLOW_LOCAL__RUN_DIR": ".run/cluster",
    "LEARNFLOW_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9092,127.0.0.1:9192,127.0.0.1:9292",
    "LEARNFLOW_KAFKA__REPLICATION_FACTOR": "3",
    "LEARNFLOW_KAFKA__MIN_INSYNC_REPLICAS": "2",
    "LEARNFLOW_LOCAL__KAFKA_HEAP_MB": "384",
    "LEARNFLOW_LOCAL__RAY_WORKER_NODES": "1",
    "LEARNFLOW_SERVE__INGRESS_REPLICAS": "2",
    "LEARNFLOW_SERVE__MAX_REPLICAS_PER_NODE": "1",
}


def active() -> str:
    """``cluster`` while :data:`PROFILE_FILE` names it, else ``single``."""
    return "cluster" if PROFILE_FILE.exists() else "single"


def use_cluster(running: list[str]) -> None:
    """Make ``cluster`` the active profile; ``running`` names what the single-node platform
    still runs (the two share ports, so it must be stopped first)."""
    if active() == "cluster":
        return
    if running:
        raise PlatformError(
            f"the single-node platform is running ({', '.join(running)}): "
            "`learnflow down` first, then `learnflow up --cluster`"
        )
    PROFILE_FILE.parent.mkdir(parents=True, exist_ok=True)
    PROFILE_FILE.write_text("".join(f"{key}={value}\n" for key, value in CLUSTER.items()))


def clear() -> None:
    PROFILE_FILE.unlink(missing_ok=True)


def describe(settings: Settings) -> str:
    return (
        f"{active()} profile: {len(kafka.nodes(settings))} Kafka node(s), "
        f"{1 + settings.local.ray_worker_nodes} Ray node(s), "
        f"{settings.serve.ingress_replicas} API replica(s)"
    )
