"""Development only (``environment=dev`` with ``auth.dev_tokens``): the web editor's login."""

from __future__ import annotations

from fastapi import APIRouter

from learnflow import keyring
from serve.deps import ServicesDep
from serve.wire import DevTokenRequest, TokenResponse

router = APIRouter(tags=["development"])


@router.post("/dev/token")
async def dev_token(body: DevTokenRequest, services: ServicesDep) -> TokenResponse:
    """Development only: a token for any student id (the web editor's login)."""
    ring = services.signing_ring()
    token, claims = keyring.mint(ring, services.settings.auth, body.student_id)
    return TokenResponse(token=token, student_id=body.student_id, expires_at=claims["exp"])
