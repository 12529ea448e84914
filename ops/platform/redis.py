"""Redis from Debian's ``redis-server``: own port and data dir under ``.run/redis``, AOF on."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from urllib.parse import urlsplit

import redis

from learnflow.deadline import Deadline
from learnflow.settings import Settings
from ops.platform import processes
from ops.platform.exceptions import MissingDependencyError
from ops.platform.processes import ServiceFiles
from ops.platform.status import ComponentStatus

NAME = "redis"


def files(settings: Settings) -> ServiceFiles:
    return ServiceFiles.under(settings.local.run_dir, NAME)


def address(settings: Settings) -> tuple[str, int]:
    url = urlsplit(settings.redis.url)
    return url.hostname or "127.0.0.1", url.port or 6379


def client(settings: Settings, socket_timeout_s: float = 2.0) -> redis.Redis:
    """A blocking client for the configured Redis, with its password (for the CLI's reads)."""
    password = settings.redis.password
    return redis.Redis.from_url(
        settings.redis.url,
        password=password.get_secret_value() if password is not None else None,
        socket_timeout=socket_timeout_s,
    )


def start(settings: Settings, deadline: Deadline) -> ComponentStatus:
    """Start redis-server unless it already runs; wait until it answers PING."""
    svc = files(settings)
    host, port = address(settings)
    pid = processes.running_pid(svc)
    if pid is None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise MissingDependencyError("redis-server not found: apt-get install redis-server")
        pid = processes.spawn(svc, [binary, str(_write_config(settings, host, port))])
    processes.wait_until(
        svc, lambda: _ping(host, port), deadline, f"Redis on {host}:{port}", pid=pid
    )
    return ComponentStatus(NAME, True, pid, port, f"redis://{host}:{port}")


def stop(settings: Settings, deadline: Deadline) -> bool:
    """SIGTERM makes redis-server fsync the AOF before it exits."""
    return processes.stop(files(settings), deadline)


def status(settings: Settings) -> ComponentStatus:
    host, port = address(settings)
    pid = processes.running_pid(files(settings))
    up = pid is not None and _ping(host, port)
    return ComponentStatus(NAME, up, pid, port, f"redis://{host}:{port}")


def _write_config(settings: Settings, host: str, port: int) -> Path:
    data = settings.local.run_dir / NAME
    data.mkdir(parents=True, exist_ok=True)
    config = data / "redis.conf"
    lines = [
        f"bind {host}",
        f"port {port}",
        "protected-mode yes",
        "daemonize no",
        f'dir "{data}"',
        "appendonly yes",
        "appendfsync everysec",
        # Checkpoints log about 0.5 KB per event; at the default 64 MB the log was rewritten
        # (a fork writing the whole data set) every few seconds under load.
        "auto-aof-rewrite-min-size 512mb",
        # A student's latest attempts at an exercise (JSON arrays of about 90 bytes) stay one
        # compact listpack instead of a skiplist and a hash table: a third of the memory.
        "zset-max-listpack-value 128",
        'save ""',
        "loglevel notice",
        'logfile ""',
    ]
    if settings.redis.password is not None:
        lines.append(f'requirepass "{settings.redis.password.get_secret_value()}"')
    config.write_text("\n".join(lines) + "\n")
    config.chmod(0o600)
    return config


def _ping(host: str, port: int) -> bool:
    """A raw RESP PING; true also when Redis answers NOAUTH (it is up, just locked)."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            reply = conn.recv(64)
    except OSError:
        return False
    return reply.startswith((b"+PONG", b"-NOAUTH"))
