"""Authentication and authorization, in one place.

Tokens are RS256 JWTs from our key set (``learnflow.keyring``): the header's ``kid`` picks the
public key; ``exp``, ``iat``, ``sub``, ``jti``, ``iss`` and ``aud`` are required, ``nbf`` is
honoured, a lifetime over ``auth.max_lifetime_s`` is refused, and the ``permissions`` claim must
hold what the route declares. Revoked ``jti``s live in Redis (checked per request, with the rate
limit, by :mod:`serve.limits`).

A verified token is cached by its text until it expires, so a repeated token costs a dict lookup
rather than an RSA verification; revocation is still checked on every request.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from learnflow import keyring, students
from learnflow.exceptions import LearnFlowError
from learnflow.settings import AuthSettings

_CACHE_SIZE = 50_000
_RELOAD_EVERY_S = 5.0


class AuthError(LearnFlowError):
    """A request that cannot pass: 401 (who are you?) or 403 (not allowed)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Principal:
    student_id: str
    permissions: frozenset[str]
    jti: str
    expires_at: float

    def require(self, permission: str) -> None:
        if permission not in self.permissions:
            raise AuthError(403, f"token lacks the {permission!r} permission")


class TokenVerifier:
    """Verifies bearer tokens against the key set on disk (reloaded when a new kid appears)."""

    def __init__(self, settings: AuthSettings, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._keys: dict[str, RSAPublicKey] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Principal] = OrderedDict()
        self.reload()

    def reload(self) -> None:
        """Read the valid public keys again (new kids after a rotation, pruned old ones)."""
        ring = keyring.load(self._settings.keys_dir)
        keys: dict[str, RSAPublicKey] = {}
        for kid, pem in ring.public_keys(self._clock()).items():
            key = load_pem_public_key(pem.encode())
            if isinstance(key, RSAPublicKey):
                keys[kid] = key
        with self._lock:
            self._keys = keys
            self._loaded_at = time.monotonic()
            self._cache.clear()

    @property
    def kids(self) -> list[str]:
        return sorted(self._keys)

    def verify(self, token: str) -> Principal:
        now = self._clock()
        cached = self._cache.get(token)
        if cached is not None:
            if now < cached.expires_at + self._settings.leeway_s:
                return cached
            self._cache.pop(token, None)
            raise AuthError(401, "token expired")
        principal = self._verify(token, now)
        with self._lock:
            self._cache[token] = principal
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return principal

    def _verify(self, token: str, now: float) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as err:  # undecodable, or a header PyJWT refuses
            raise AuthError(401, f"malformed token: {err}") from None
        if "crit" in header:
            # RFC 7515 4.1.11: a verifier must refuse extensions it does not understand, and we
            # issue tokens with none; refusing every "crit" leaves no extension to get wrong.
            raise AuthError(401, "token header 'crit' is not accepted: no extensions are")
        algorithm = header.get("alg")
        if algorithm != keyring.ALGORITHM:
            raise AuthError(401, f"token algorithm {algorithm!r} not accepted: RS256 only")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError(401, "token has no key id (kid)")
        key = self._key(kid)
        settings = self._settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[keyring.ALGORITHM],
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_s,
                options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(401, "token expired") from None
        except jwt.ImmatureSignatureError as err:
            if "iat" in str(err):
                raise AuthError(401, "token issued in the future (iat)") from None
            raise AuthError(401, "token not yet valid (nbf)") from None
        except jwt.InvalidAudienceError:
            raise AuthError(401, f"token audience is not {settings.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise AuthError(401, f"token issuer is not {settings.issuer!r}") from None
        except jwt.MissingRequiredClaimError as err:
            raise AuthError(401, f"token has no {err.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthError(401, "token signature does not verify") from None
        except jwt.InvalidTokenError as err:
            raise AuthError(401, f"invalid token: {err}") from None
        issued, expires = claims["iat"], claims["exp"]
        if not isinstance(issued, int | float) or not isinstance(expires, int | float):
            raise AuthError(401, "token iat and exp must be numbers")
        if issued > now + settings.leeway_s:
            raise AuthError(401, "token issued in the future (iat)")
        if expires - issued > settings.max_lifetime_s:
            raise AuthError(
                401, f"token lifetime {expires - issued:.0f} s exceeds {settings.max_lifetime_s} s"
            )
        subject, permissions = claims["sub"], claims.get("permissions", [])
        if not isinstance(subject, str) or not students.is_valid(subject):
            raise AuthError(401, f"token subject is not a valid student id: {students.RULE}")
        if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
            raise AuthError(401, "token permissions claim must be a list of strings")
        return Principal(subject, frozenset(permissions), str(claims["jti"]), float(expires))

    def _key(self, kid: str) -> RSAPublicKey:
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._loaded_at > _RELOAD_EVERY_S:
            self.reload()  # a rotation may have added it
            key = self._keys.get(kid)
        if key is None:
            raise AuthError(401, f"token signed with unknown key {kid!r}")
        return key
