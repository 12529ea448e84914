"""The Serve applications as import paths, built from the settings in the environment
(``LEARNFLOW_*``): what ``serve deploy`` and a KubeRay RayService's ``serveConfigV2`` name.

- ``serve.app:api``: the HTTP API (and the ``Grader`` deployment when
  ``LEARNFLOW_GRADER__PLACEMENT=deployment``), routed at ``/``;
- ``serve.app:ingest``: the keeper that starts the shard hosts and keeps them up (no route).

The deployment options come from the settings, as with ``learnflow up``; a ``serveConfigV2``
may override them per deployment by name (:data:`DEPLOYMENTS`).
"""

from __future__ import annotations

from typing import Any, cast

from ray.serve import Deployment

from ingest.deployment import IngestDeployment, build_ingest
from learnflow.settings import Settings
from serve.deployment import ApiIngress, GraderDeployment, build_application

DEPLOYMENTS = {
    "serve.app:api": tuple(cast(Deployment, d).name for d in (ApiIngress, GraderDeployment)),
    "serve.app:ingest": (cast(Deployment, IngestDeployment).name,),
}
"""The deployments each application may hold, by import path."""


def api(args: dict[str, Any]) -> Any:
    """The API application (a Serve application builder: ``args`` are unused, the settings
    come from the environment)."""
    return build_application(Settings())


def ingest(args: dict[str, Any]) -> Any:
    """The ingest application: the shard keeper."""
    return build_ingest(Settings())
