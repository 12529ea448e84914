"""The whole local platform in start order: Redis, PostgreSQL (+ migrations), Kafka (+ topics),
Ray head, then the Serve application. ``down`` stops them in reverse order, by pid.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Callable

from ingest import topics
from learnflow import keyring, migrations
from learnflow.deadline import Deadline
from learnflow.settings import Settings
from ops.platform import frontend, kafka, postgres, processes, ray, redis
from ops.platform.status import ComponentStatus

SERVE = "serve"
Report = Callable[[str], None]


def up(settings: Settings, report: Report, *, with_app: bool = True) -> list[ComponentStatus]:
    """Start everything that is not running yet; idempotent. ``report`` narrates each step."""
    budget = settings.local.start_timeout_s
    started: list[ComponentStatus] = []
    settings.local.run_dir.mkdir(parents=True, exist_ok=True)

    report("Redis")
    started.append(redis.start(settings, Deadline.after(budget)))
    report("PostgreSQL")
    started.append(postgres.start(settings, Deadline.after(budget)))
    report("schema migrations")
    asyncio.run(migrations.apply(settings.postgres.dsn()))
    report("Kafka")
    started.append(kafka.start(settings, Deadline.after(budget)))
    report("Kafka topics")
    topics.ensure_topics(
        topics.admin_client(settings.kafka),
        topics.learnflow_topics(settings.kafka),
        Deadline.after(budget),
    )
    report("Ray head")
    started.append(ray.start(settings, Deadline.after(budget)))
    for node in ray.worker_nodes(settings):
        report(f"Ray node {node.index}")
        started.append(ray.start_worker(settings, node, Deadline.after(budget)))
    report("JWT keys")
    keyring.init(settings.auth.keys_dir)
    if with_app:
        report("web editor (frontend/dist)")
        settings.serve.frontend_dir = frontend.build()
        report("Serve application")
        deploy_app(settings)
        wait_ready(settings, Deadline.after(budget))
        started.append(serve_status(settings))
    return started


def deploy_app(settings: Settings) -> None:
    # Ray reads its auth settings when imported: point it at the cluster's token first.
    ray.use_cluster_env(settings)
    from serve.deployment import deploy

    deploy(settings)


def wait_ready(settings: Settings, deadline: Deadline) -> None:
    """Wait until ``/readyz`` answers 200."""
    processes.wait_until(
        ray.files(settings),
        lambda: _get(f"{settings.serve.url}/readyz")[0] == 200,
        deadline,
        f"Serve app at {settings.serve.url}/readyz",
    )


def down(settings: Settings, report: Report) -> list[tuple[str, bool]]:
    """Stop every service by pid, in reverse start order; returns (name, was running)."""
    stopped: list[tuple[str, bool]] = []
    for name, stop in (
        (ray.NAME, ray.stop),
        (kafka.NAME, kafka.stop),
        (postgres.NAME, postgres.stop),
        (redis.NAME, redis.stop),
    ):
        report(name)
        stopped.append((name, stop(settings, Deadline.after(settings.local.stop_timeout_s))))
    return stopped


def status(settings: Settings) -> list[ComponentStatus]:
    return [
        redis.status(settings),
        postgres.status(settings),
        kafka.status(settings),
        ray.status(settings),
        *(ray.worker_status(settings, node) for node in ray.worker_nodes(settings)),
        serve_status(settings),
    ]


def serve_status(settings: Settings) -> ComponentStatus:
    code, body = _get(f"{settings.serve.url}/readyz")
    if code == 0:
        return ComponentStatus(
            SERVE, False, None, settings.serve.port, settings.serve.url, "not answering"
        )
    detail = "ready" if code == 200 else str(body.get("reason", f"HTTP {code}"))
    return ComponentStatus(
        SERVE, code == 200, None, settings.serve.port, settings.serve.url, detail
    )


def _get(url: str) -> tuple[int, dict[str, object]]:
    """GET a local JSON endpoint: (status, body), or (0, {}) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5.0) as response:  # noqa: S310 - local URL
            return int(response.status), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        try:
            return int(err.code), json.loads(err.read() or b"{}")
        except ValueError:
            return int(err.code), {}
    except (OSError, ValueError):
        return 0, {}
