"""Who may make a request: the bearer token, its permission, revocation and the rate limit.

One function for every way into the API (FastAPI's dependencies, the fast read path), so both
apply exactly the same checks and raise the same errors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from serve.auth import AuthError, Principal
from serve.exceptions import RateLimitedError
from serve.services import Services


@dataclass(frozen=True, slots=True)
class Access:
    principal: Principal
    remaining: int
    """Requests left in the student's window."""
    reads: tuple[bytes | None, ...]
    """The values of the keys asked for, read in the same Redis round trip."""


async def admit(
    services: Services,
    token: str | None,
    permission: str,
    reads: Callable[[str], Sequence[str]] | None = None,
) -> Access:
    """The verified, permitted, not revoked, not rate-limited caller; raises AuthError (401 or
    403) or RateLimitedError (429). ``reads`` names the Redis keys (for the caller's student
    id) to read in the same round trip."""
    if token is None:
        raise AuthError(401, "missing Authorization header (Bearer token)")
    principal = services.verifier().verify(token)
    principal.require(permission)
    wanted = reads(principal.student_id) if reads is not None else ()
    admission = await services.guard.admit(principal.student_id, principal.jti, wanted)
    if admission.revoked:
        raise AuthError(401, "token revoked")
    if not admission.admitted:
        raise RateLimitedError(admission.retry_after_s)
    return Access(principal, admission.remaining, admission.reads)
