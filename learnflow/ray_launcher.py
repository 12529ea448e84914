"""The Ray cluster launcher's config (``ray up``) for LearnFlow on machines of one's own.

The addresses are the operator's, given when the config is rendered (``learnflow ray-cluster
render``, from options or the environment), never placeholders in a committed file: a config
that names a machine that does not exist would only fail at ``ray up``, over SSH. Ports come
from the settings, as on one machine. Every node gets the project (synced from where it is
rendered, installed into its own virtualenv) and the cluster's auth token (Ray 2.60 token auth).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from learnflow.exceptions import LearnFlowError
from learnflow.settings import Settings

_HOSTNAME: Final = re.compile(
    r"(?=.{1,253}\Z)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\Z",
    re.IGNORECASE,
)
_REMOTE_PROJECT: Final = "~/learnflow"
_REMOTE_TOKEN_PATH: Final = "~/.learnflow-ray-auth-token"  # noqa: S105 - a path, not a secret


class LauncherConfigError(LearnFlowError):
    """The launcher config cannot be made from what was given."""


def node_address(value: str) -> str:
    """``value`` if it is an IP address or a hostname (RFC 1123), else a clear error."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    # A name whose last label is all digits is an IP address gone wrong (10.0.0.300), not a host.
    if _HOSTNAME.match(value) is None or value.rsplit(".", 1)[-1].isdigit():
        raise LauncherConfigError(f"{value!r} is neither an IP address nor a hostname")
    return value


def launcher_config(
    settings: Settings,
    head: str,
    workers: Sequence[str],
    ssh_user: str,
    project: Path,
    token: Path,
) -> dict[str, Any]:
    """The config of a cluster of ``head`` and ``workers`` (``provider: local``), as a dict."""
    head = node_address(head)
    workers = [node_address(worker) for worker in workers]
    if head in workers:
        raise LauncherConfigError(f"{head} is the head; it cannot be a worker too")
    if len(set(workers)) != len(workers):
        raise LauncherConfigError("a worker is named twice")
    ray_bin = f"{_REMOTE_PROJECT}/.venv/bin/ray"
    auth = f"RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={_REMOTE_TOKEN_PATH}"
    return {
        "cluster_name": "learnflow",
        "max_workers": len(workers),
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 10,
        "provider": {"type": "local", "head_ip": head, "worker_ips": workers},
        "auth": {"ssh_user": ssh_user},
        "file_mounts": {_REMOTE_PROJECT: str(project), _REMOTE_TOKEN_PATH: str(token)},
        "rsync_exclude": [".run", ".venv", "**/node_modules", "**/__pycache__"],
        "initialization_commands": [],
        "setup_commands": [
            f"python3.11 -m venv {_REMOTE_PROJECT}/.venv",
            f"{_REMOTE_PROJECT}/.venv/bin/pip install -q -e {_REMOTE_PROJECT}",
        ],
        # The nodes are LearnFlow's own: stopping whatever Ray runs there is what a restart
        # by the launcher means.
        "head_start_ray_commands": [
            f"{ray_bin} stop",
            f"{auth} {ray_bin} start --head --port={settings.ray.gcs_port} "
            f"--dashboard-host=0.0.0.0 --dashboard-port={settings.ray.dashboard_port} "
            "--autoscaling-config=~/ray_bootstrap_config.yaml",
        ],
        "worker_start_ray_commands": [
            f"{ray_bin} stop",
            f"{auth} {ray_bin} start --address=$RAY_HEAD_IP:{settings.ray.gcs_port}",
        ],
    }


def render(config: dict[str, Any]) -> str:
    return (
        "# Ray cluster launcher config for LearnFlow (`ray up ray_cluster.yaml`), rendered by\n"
        "# `learnflow ray-cluster render`: render it again rather than editing it.\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
