"""Ray Serve deployments of the API and how ``learnflow up`` deploys them."""

from __future__ import annotations

import logging
from typing import Any, cast

import ray
from fastapi import FastAPI
from ray import serve as ray_serve
from ray.serve import Deployment

from actors.registry import ensure_shards
from ingest.deployment import build_ingest
from learnflow.settings import Settings
from serve.api import create_api

logger = logging.getLogger(__name__)

INGEST_APP = "ingest"


@ray_serve.deployment(name="ApiIngress")
@ray_serve.ingress()
class ApiIngress:
    """HTTP ingress: builds the FastAPI app on the replica from the settings it was bound with."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_api(self._settings)


def build_application(settings: Settings) -> Any:
    """The bound Serve application (``ray.serve.Application``) for these settings."""
    return (
        cast(Deployment, ApiIngress)
        .options(
            num_replicas=settings.serve.ingress_replicas,
            ray_actor_options={"num_cpus": settings.serve.ingress_num_cpus},
        )
        .bind(settings)
    )


def deploy(settings: Settings) -> None:
    """Connect to the running cluster and (re)deploy the app; returns once it is healthy."""
    ray.init(
        address=settings.ray.address,
        namespace=settings.ray.namespace,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    try:
        ray_serve.start(
            http_options={"host": settings.serve.host, "port": settings.serve.port},
        )
        ray_serve.run(
            build_application(settings),
            name=settings.serve.app_name,
            route_prefix="/",
            blocking=False,
        )
        logger.info("serve app %s deployed at %s", settings.serve.app_name, settings.serve.url)
        ensure_shards(settings)
        ray_serve.run(build_ingest(settings), name=INGEST_APP, route_prefix=None, blocking=False)
        logger.info("ingest deployed: %d replica(s)", settings.ingest.replicas)
    finally:
        ray.shutdown()
