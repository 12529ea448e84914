"""The JWT key set: RS256 signing keys, rotation, and minting tokens.

Layout of ``auth.keys_dir``::

    keyset.json            which key signs, and until when each retired key stays valid
    public/<kid>.pem       public keys (the API and Kong verify with these)
    private/<kid>.pem      private keys, mode 0600, never committed

Rotation makes a new signing key; the old one stops signing but its public key stays valid
until the last token it signed has expired (``auth.max_lifetime_s`` later), then is pruned.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from learnflow import students
from learnflow.exceptions import LearnFlowError
from learnflow.settings import AuthSettings

ALGORITHM = "RS256"
PERMISSIONS = ("exercise:submit", "progress:read")
"""Every permission a student token carries."""


class KeyRingError(LearnFlowError):
    """The key set is missing, unreadable or inconsistent."""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    kid: str
    created_at: int
    valid_until: int | None = None
    """None while the key signs; after rotation, when its last token expires."""

    def valid_at(self, now: float) -> bool:
        return self.valid_until is None or now < self.valid_until


@dataclass(slots=True)
class KeyRing:
    directory: Path
    signing: str
    keys: dict[str, KeyInfo] = field(default_factory=dict)
    _signer: tuple[str, RSAPrivateKey] | None = field(default=None, repr=False, compare=False)

    @property
    def manifest(self) -> Path:
        return self.directory / "keyset.json"

    def public_path(self, kid: str) -> Path:
        return self.directory / "public" / f"{kid}.pem"

    def private_path(self, kid: str) -> Path:
        return self.directory / "private" / f"{kid}.pem"

    def public_keys(self, now: float | None = None) -> dict[str, str]:
        """PEM of every public key still valid, by ``kid``."""
        moment = time.time() if now is None else now
        return {
            kid: self.public_path(kid).read_text()
            for kid, info in self.keys.items()
            if info.valid_at(moment)
        }

    def private_key(self) -> RSAPrivateKey:
        """The signing key, parsed once per ring (parsing a PEM costs far more than signing)."""
        if self._signer is not None and self._signer[0] == self.signing:
            return self._signer[1]
        path = self.private_path(self.signing)
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            raise KeyRingError(
                f"signing key {self.signing} has no private key at {path}; "
                "run `learnflow keys rotate` to make a new one"
            ) from None
        if not isinstance(key, RSAPrivateKey):
            raise KeyRingError(f"{path} is not an RSA private key")
        self._signer = (self.signing, key)
        return key

    def save(self) -> None:
        document = {
            "signing": self.signing,
            "keys": [
                {"kid": k.kid, "created_at": k.created_at, "valid_until": k.valid_until}
                for k in self.keys.values()
            ],
        }
        temporary = self.manifest.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(document, indent=2) + "\n")
        temporary.replace(self.manifest)


def load(directory: Path) -> KeyRing:
    manifest = directory / "keyset.json"
    try:
        document = json.loads(manifest.read_text())
        ring = KeyRing(
            directory,
            str(document["signing"]),
            {
                str(item["kid"]): KeyInfo(
                    str(item["kid"]), int(item["created_at"]), item.get("valid_until")
                )
                for item in document["keys"]
            },
        )
    except FileNotFoundError:
        raise KeyRingError(f"no JWT key set at {directory}: run `learnflow keys init`") from None
    except (ValueError, KeyError, TypeError) as err:
        raise KeyRingError(f"{manifest} is not a valid key set: {err}") from err
    if ring.signing not in ring.keys:
        raise KeyRingError(f"{manifest}: signing key {ring.signing} is not in the key list")
    return ring


def init(directory: Path) -> tuple[KeyRing, bool]:
    """The key set at ``directory``, created with one signing key if absent.

    Returns the ring and whether it was created now.
    """
    if (directory / "keyset.json").exists():
        return load(directory), False
    (directory / "public").mkdir(parents=True, exist_ok=True)
    (directory / "private").mkdir(parents=True, exist_ok=True, mode=0o700)
    ring = KeyRing(directory, "")
    _add_key(ring)
    ring.save()
    return ring, True


def rotate(directory: Path, settings: AuthSettings, now: float | None = None) -> KeyRing:
    """Make a new signing key; retire the old one; prune keys whose tokens have all expired."""
    moment = int(time.time() if now is None else now)
    ring = load(directory)
    old = ring.keys[ring.signing]
    ring.keys[old.kid] = KeyInfo(old.kid, old.created_at, moment + settings.max_lifetime_s)
    for kid, info in list(ring.keys.items()):
        if not info.valid_at(moment):
            del ring.keys[kid]
            ring.public_path(kid).unlink(missing_ok=True)
            ring.private_path(kid).unlink(missing_ok=True)
    _add_key(ring, moment)
    ring.save()
    return ring


def _add_key(ring: KeyRing, now: int | None = None) -> str:
    moment = int(time.time() if now is None else now)
    stamp = datetime.fromtimestamp(moment, UTC).strftime("%Y%m%d")
    kid = f"lf-{stamp}-{secrets.token_hex(4)}"
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = ring.private_path(kid)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private_pem)
    ring.public_path(kid).write_bytes(public_pem)
    ring.keys[kid] = KeyInfo(kid, moment)
    ring.signing = kid
    return kid


def mint(
    ring: KeyRing,
    settings: AuthSettings,
    student_id: str,
    ttl_s: int | None = None,
    permissions: Iterable[str] = PERMISSIONS,
    now: float | None = None,
) -> tuple[str, dict[str, Any]]:
    """A signed token for ``student_id`` and its claims."""
    ttl = settings.default_ttl_s if ttl_s is None else ttl_s
    if not 0 < ttl <= settings.max_lifetime_s:
        raise KeyRingError(
            f"token lifetime must be between 1 and {settings.max_lifetime_s} s, got {ttl}"
        )
    if not students.is_valid(student_id):
        raise KeyRingError(f"student id {student_id!r} is not valid: {students.RULE}")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": student_id,
        "iss": settings.issuer,
        "aud": settings.audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl,
        "jti": str(uuid.uuid4()),
        "permissions": list(permissions),
    }
    token = jwt.encode(
        claims, ring.private_key(), algorithm=ALGORITHM, headers={"kid": ring.signing}
    )
    return token, claims
