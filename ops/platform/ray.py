"""A local Ray head (dashboard on 127.0.0.1) and the Serve application deployed on it.

Ray's token authentication is on: the token lives in ``.run/ray/auth-token`` (mode 0600) and every
client of this cluster, the CLI and the tests included, reads it through :func:`client_env`.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from learnflow.deadline import Deadline
from learnflow.ray_client import client_env, connect, token_path, use_cluster_env
from learnflow.settings import Settings
from ops.platform import processes
from ops.platform.exceptions import MissingDependencyError
from ops.platform.processes import ServiceFiles
from ops.platform.status import ComponentStatus

__all__ = [
    "WorkerNode", "client_env", "connect", "start", "start_worker", "status", "stop",
    "token_path", "use_cluster_env", "worker_nodes", "worker_status",
]  # fmt: skip

NAME = "ray"
# Unix socket paths are limited to 107 bytes; Ray puts session sockets deep under its temp dir.
_MAX_TEMP_DIR = 40


def files(settings: Settings) -> ServiceFiles:
    return ServiceFiles.under(settings.local.run_dir, NAME)


HAPROXY_LOOPBACK = Path(__file__).with_name("haproxy-loopback")


def proxy_env(settings: Settings) -> dict[str, str]:
    """Environment of the head for the chosen Serve proxy (``serve.proxy``).

    ``haproxy``: Serve's HAProxy mode with its throughput-optimized settings, running Debian's
    haproxy through ``haproxy-loopback`` so its stats and metrics pages listen on 127.0.0.1 too.
    """
    if settings.serve.proxy != "haproxy":
        return {}
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(binary).exists():
        raise MissingDependencyError(
            "serve.proxy=haproxy needs haproxy (make bootstrap installs it)"
        )
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_HAPROXY_BINARY_PATH": str(HAPROXY_LOOPBACK),
        "LEARNFLOW_HAPROXY_BINARY": binary,
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    }


def temp_dir(settings: Settings) -> Path:
    preferred = settings.local.run_dir / NAME / "tmp"
    if len(str(preferred)) <= _MAX_TEMP_DIR:
        return preferred
    digest = hashlib.sha256(str(settings.local.run_dir).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"learnflow-ray-{digest}"


def start(settings: Settings, deadline: Deadline) -> ComponentStatus:
    svc = files(settings)
    rs = settings.ray
    pid = processes.running_pid(svc)
    if pid is None:
        _ensure_token(settings)
        pid = _spawn(
            settings,
            svc,
            [
                "--head",
                f"--node-ip-address={rs.host}",
                f"--port={rs.gcs_port}",
                f"--dashboard-host={rs.dashboard_host}",
                f"--dashboard-port={rs.dashboard_port}",
                f"--num-cpus={rs.num_cpus}",
                f"--metrics-export-port={rs.metrics_port}",
            ],
            {
                **(_NODE_HEALTH_CHECKS if settings.local.ray_worker_nodes else {}),
                **proxy_env(settings),
            },
        )
    processes.wait_until(
        svc,
        lambda: _dashboard_answers(settings),
        deadline,
        f"Ray head (dashboard {rs.dashboard_url})",
        pid=pid,
    )
    return ComponentStatus(NAME, True, pid, rs.dashboard_port, rs.dashboard_url)


def _spawn(settings: Settings, svc: ServiceFiles, node_args: list[str], env: dict[str, str]) -> int:
    """``ray start --block`` with this node's arguments; a local node holds nothing worth
    draining for, so it stops at once on SIGTERM."""
    rs = settings.ray
    return processes.spawn(
        svc,
        [
            str(Path(sys.executable).with_name("ray")),
            "start", "--block", *node_args,
            f"--object-store-memory={rs.object_store_mb * 1024 * 1024}",
            f"--temp-dir={temp_dir(settings)}",
            "--disable-usage-stats",
        ],
        env={
            **client_env(settings),
            "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
            "RAY_worker_niceness": str(rs.worker_niceness),
            **_SERVE_PACE,
            **env,
            **rs.extra_env,
        },
    )  # fmt: skip


_SERVE_PACE = {
    "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.5",
    "RAY_SERVE_METRICS_EXPORT_INTERVAL_MS": "1000",
}
"""Serve's controller goes over its deployments twice a second instead of ten times, and the
replicas and handles export their cached metrics once a second instead of ten times: idle, the
platform then takes about 0.05 of this machine's two cores less (the controller alone 0.032 →
0.011), which the shard hosts get under load. Deployments and restarts wait on health checks
and starts measured in seconds, not on these."""

_NODE_HEALTH_CHECKS = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}
"""With worker nodes, one that misses three health checks a second apart is dead (Ray's
defaults took about 17 s to end a lost node's actors). A head alone keeps the defaults: a
busy 2-core host must not declare its only node dead."""


def stop(settings: Settings, deadline: Deadline) -> bool:
    """SIGTERM makes ``ray start --block`` stop every Ray process it began (worker nodes
    first, then the head)."""
    for node in worker_nodes(settings):
        processes.stop(node.files, deadline)
    return processes.stop(files(settings), deadline)


@dataclass(frozen=True)
class WorkerNode:
    """A Ray node started on this host beside the head: its own ``ray start`` process tree."""

    index: int
    files: ServiceFiles
    port: int
    """Its node manager's port, the first of its 100."""

    @property
    def name(self) -> str:
        return f"{NAME}-node-{self.index}"


def worker_nodes(settings: Settings) -> list[WorkerNode]:
    local = settings.local
    return [
        WorkerNode(
            k,
            ServiceFiles.under(local.run_dir, f"{NAME}-node-{k}"),
            local.ray_worker_port_base + 100 * (k - 1),
        )
        for k in range(1, local.ray_worker_nodes + 1)
    ]


def start_worker(settings: Settings, node: WorkerNode, deadline: Deadline) -> ComponentStatus:
    """Start ``node`` joined to the head (every port set: several nodes share this host)."""
    rs = settings.ray
    pid = processes.running_pid(node.files)
    if pid is None:
        base = node.port
        pid = _spawn(
            settings,
            node.files,
            [
                f"--address={rs.address}",
                f"--node-ip-address={rs.host}",
                f"--num-cpus={settings.local.ray_worker_cpus}",
                f"--node-manager-port={base}",
                f"--object-manager-port={base + 1}",
                f"--metrics-export-port={base + 2}",
                f"--dashboard-agent-listen-port={base + 3}",
                f"--dashboard-agent-grpc-port={base + 4}",
                f"--runtime-env-agent-port={base + 5}",
                f"--min-worker-port={base + 10}",
                f"--max-worker-port={base + 60}",
            ],
            {},
        )
    processes.wait_until(
        node.files,
        lambda: processes.port_open(rs.host, node.port),
        deadline,
        f"Ray node {node.index} (node manager on {rs.host}:{node.port})",
        pid=pid,
    )
    return ComponentStatus(node.name, True, pid, node.port, "")


def worker_status(settings: Settings, node: WorkerNode) -> ComponentStatus:
    pid = processes.running_pid(node.files)
    up = pid is not None and processes.port_open(settings.ray.host, node.port)
    return ComponentStatus(node.name, up, pid, node.port, "")


def status(settings: Settings) -> ComponentStatus:
    pid = processes.running_pid(files(settings))
    up = pid is not None and _dashboard_answers(settings)
    rs = settings.ray
    return ComponentStatus(NAME, up, pid, rs.dashboard_port, rs.dashboard_url)


def _ensure_token(settings: Settings) -> None:
    path = token_path(settings)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))


def _dashboard_answers(settings: Settings) -> bool:
    token = token_path(settings).read_text().strip()
    request = urllib.request.Request(  # noqa: S310 - the configured local dashboard
        f"{settings.ray.dashboard_url}/api/version", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=2.0) as response:  # noqa: S310 - local dashboard
            return bool(response.status == 200)
    except OSError:
        return False
