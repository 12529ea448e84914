"""How any process of the platform reaches the Ray cluster: token auth and the namespace.

Ray's token authentication is on (Ray 2.60): the token lives in ``<run_dir>/ray/auth-token``
(mode 0600; on a cluster, mounted there from a Secret). Ray is imported only inside
:func:`connect`, so this module stays importable where Ray is not installed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from learnflow.settings import Settings


def token_path(settings: Settings) -> Path:
    return settings.local.run_dir / "ray" / "auth-token"


def client_env(settings: Settings) -> dict[str, str]:
    """Environment a process needs to talk to this cluster (token auth)."""
    return {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token_path(settings)),
        "RAY_USAGE_STATS_ENABLED": "0",
    }


def use_cluster_env(settings: Settings) -> None:
    """Point this process's Ray client at the cluster's token (before Ray is first imported)."""
    os.environ.update(client_env(settings))


def connect(settings: Settings) -> None:
    """``ray.init`` against the cluster, quietly, in ``settings.ray.namespace``."""
    import ray as ray_api

    use_cluster_env(settings)
    ray_api.init(
        address=settings.ray.address,
        namespace=settings.ray.namespace,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
