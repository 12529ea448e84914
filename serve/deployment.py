"""Ray Serve deployments of the API and how ``learnflow up`` deploys them."""

from __future__ import annotations

import gc
import logging
from typing import Any, cast

import ray
from fastapi import FastAPI
from ray import serve as ray_serve
from ray.serve import Deployment
from ray.serve.handle import DeploymentHandle

from actors.registry import ensure_shards
from ingest.deployment import build_ingest
from learnflow import ray_client
from learnflow.settings import Settings
from serve.api import create_api
from serve.grading import catalog, grader, sandbox
from serve.services import Grading, LocalGrading, ServeGrading, grader_lock_dir

logger = logging.getLogger(__name__)

INGEST_APP = "ingest"
_QUIET = {"enable_access_log": False}
"""Serve writes an access-log line per request by default: CPU on every read. HAProxy's
metrics (port 9101) count the requests; errors are still logged."""


@ray_serve.deployment(name="Grader")
class GraderDeployment:
    """Runs student code in the sandbox, ``grader.slots`` programs at once per replica.

    If the sandbox cannot run here, every call answers ``{"unavailable": <why>}`` and no code
    is run.
    """

    def __init__(self, settings: Settings) -> None:
        self._exercises = catalog.load()
        self._grader = grader.Grader(settings.grader, grader_lock_dir(settings))

    async def grade(self, exercise_id: str, code: str) -> dict[str, Any]:
        try:
            result = await self._grader.grade(self._exercises[exercise_id], code)
        except sandbox.SandboxUnavailableError as err:
            logger.error("grader refuses to run code: %s", err)
            return {"unavailable": str(err)}
        return result.as_dict()


@ray_serve.deployment(name="ApiIngress")
@ray_serve.ingress()
class ApiIngress:
    """HTTP ingress: builds the FastAPI app on the replica from the settings it was bound with.

    Grades on the ``Grader`` deployment when given its handle, else in this replica (see
    ``grader.placement``).
    """

    def __init__(self, settings: Settings, grader_handle: DeploymentHandle[Any] | None) -> None:
        self._settings = settings
        self._grading: Grading = (
            LocalGrading(settings) if grader_handle is None else ServeGrading(grader_handle)
        )

    def __serve_build_asgi_app__(self) -> FastAPI:
        app = create_api(self._settings, self._grading)
        # What is loaded by now lives as long as the replica: out of the collector's full
        # passes, which otherwise walk every module and model on the request path.
        gc.freeze()
        return app


def build_grader(settings: Settings) -> Any:
    """The bound ``Grader`` deployment (``grader.placement = "deployment"``)."""
    return (
        cast(Deployment, GraderDeployment)
        .options(
            num_replicas=settings.grader.replicas,
            max_ongoing_requests=settings.grader.slots * 4,
            ray_actor_options={"num_cpus": settings.grader.num_cpus},
            logging_config=_QUIET,
        )
        .bind(settings)
    )


def _spread(settings: Settings) -> dict[str, Any]:
    limit = settings.serve.max_replicas_per_node
    return {} if limit is None else {"max_replicas_per_node": limit}


def build_application(settings: Settings) -> Any:
    """The bound Serve application (``ray.serve.Application``) for these settings."""
    grading = build_grader(settings) if settings.grader.placement == "deployment" else None
    return (
        cast(Deployment, ApiIngress)
        .options(
            num_replicas=settings.serve.ingress_replicas,
            max_ongoing_requests=settings.serve.max_ongoing_requests,
            ray_actor_options={"num_cpus": settings.serve.ingress_num_cpus},
            logging_config=_QUIET,
            **_spread(settings),
        )
        .bind(settings, grading)
    )


def deploy(settings: Settings) -> None:
    """Connect to the running cluster and (re)deploy the app; returns once it is healthy."""
    ray_client.connect(settings)
    try:
        # One proxy, on the head: nodes sharing a host cannot all take the app's port.
        ray_serve.start(
            proxy_location="HeadOnly",
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
