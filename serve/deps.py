"""Typed dependencies of the API's routes: the services, the catalog, the permitted caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serve.access import admit
from serve.auth import Principal
from serve.grading.catalog import Exercise
from serve.services import Services

_bearer = HTTPBearer(auto_error=False, description="RS256 JWT from `learnflow token`")


# Async, though they await nothing: FastAPI runs a plain ``def`` dependency in a worker thread,
# a thread hop on every request.
async def services_of(request: Request) -> Services:
    """What the app's lifespan opened for this process."""
    services: Services = request.app.state.services
    return services


async def catalog_of(request: Request) -> dict[str, Exercise]:
    exercises: dict[str, Exercise] = request.app.state.exercises
    return exercises


ServicesDep = Annotated[Services, Depends(services_of)]
Catalog = Annotated[dict[str, Exercise], Depends(catalog_of)]


def authorized(
    permission: str, progress_reads: bool = False
) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the verified, permitted, not revoked, not rate-limited caller.

    With ``progress_reads``, what a progress read needs (``Services.progress_keys``) is read in
    the same Redis round trip as the revocation and rate-limit checks; the values land in
    ``request.state.reads``.
    """

    async def dependency(
        request: Request,
        services: ServicesDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        token = credentials.credentials if credentials is not None else None
        reads = services.progress_keys if progress_reads else None
        access = await admit(services, token, permission, reads)
        request.state.rate_remaining = access.remaining
        request.state.reads = access.reads
        return access.principal

    dependency.__name__ = f"requires_{permission.replace(':', '_')}"
    return dependency


Submitter = Annotated[Principal, Depends(authorized("exercise:submit"))]
Reader = Annotated[Principal, Depends(authorized("progress:read"))]
ProgressReader = Annotated[Principal, Depends(authorized("progress:read", progress_reads=True))]
"""A reader whose state and partition checkpoint come with the admission's round trip."""
