"""Token verification without any service: a key set in a temporary folder."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from learnflow import keyring
from learnflow.settings import AuthSettings
from serve.auth import AuthError, TokenVerifier


@pytest.fixture
def auth(tmp_path: Path) -> AuthSettings:
    settings = AuthSettings(keys_dir=tmp_path / "keys")
    keyring.init(settings.keys_dir)
    return settings


def test_a_minted_token_verifies_and_carries_its_claims(auth: AuthSettings) -> None:
    ring = keyring.load(auth.keys_dir)
    token, claims = keyring.mint(ring, auth, "ada", ttl_s=600)
    principal = TokenVerifier(auth).verify(token)
    assert principal.student_id == "ada"
    assert principal.jti == claims["jti"]
    assert principal.permissions == frozenset(keyring.PERMISSIONS)
    principal.require("progress:read")
    with pytest.raises(AuthError) as refused:
        principal.require("admin")
    assert refused.value.status == 403


def test_cached_token_still_expires(auth: AuthSettings) -> None:
    now = [time.time()]
    verifier = TokenVerifier(auth, clock=lambda: now[0])
    token, _ = keyring.mint(keyring.load(auth.keys_dir), auth, "ada", ttl_s=60, now=now[0])
    verifier.verify(token)
    now[0] += 60 + auth.leeway_s + 1
    with pytest.raises(AuthError, match="expired"):
        verifier.verify(token)


def test_a_rotated_key_is_picked_up_and_the_old_one_still_verifies(auth: AuthSettings) -> None:
    verifier = TokenVerifier(auth)
    old, _ = keyring.mint(keyring.load(auth.keys_dir), auth, "ada")
    ring = keyring.rotate(auth.keys_dir, auth)
    new, _ = keyring.mint(ring, auth, "ada")
    verifier.reload()
    assert verifier.verify(new).student_id == "ada"
    assert verifier.verify(old).student_id == "ada"
    assert len(verifier.kids) == 2


def test_minting_refuses_lifetimes_over_the_maximum(auth: AuthSettings) -> None:
    with pytest.raises(keyring.KeyRingError, match="lifetime"):
        keyring.mint(keyring.load(auth.keys_dir), auth, "ada", ttl_s=auth.max_lifetime_s + 1)


def test_missing_key_set_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(keyring.KeyRingError, match="learnflow keys init"):
        keyring.load(tmp_path / "none")


def _with_header(auth: AuthSettings, header: dict[str, object]) -> str:
    """A token signed by the real key whose header is exactly ``header`` plus alg and typ."""
    import base64
    import json
    import uuid

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    ring = keyring.load(auth.keys_dir)
    now = int(time.time())
    claims = {"sub": "ada", "iss": auth.issuer, "aud": auth.audience, "iat": now,
              "exp": now + 60, "jti": str(uuid.uuid4())}  # fmt: skip
    head = {"alg": "RS256", "typ": "JWT", **header}
    signing_input = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(claims).encode())}"
    signature = ring.private_key().sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


@pytest.mark.parametrize(
    "header",
    [{"kid": 7}, {"kid": None}, {"kid": ["k"]}, {"kid": {"k": 1}}, {"kid": True}, {},
     {"crit": ["exp"]}, {"crit": "x"}, {"crit": ["b64"], "b64": True}],
    ids=["number", "null", "list", "object", "bool", "none", "crit", "crit string", "crit b64"],
)  # fmt: skip
def test_a_malformed_header_is_a_401_with_a_reason(
    auth: AuthSettings, header: dict[str, object]
) -> None:
    ring = keyring.load(auth.keys_dir)
    if "crit" in header:
        header = {"kid": ring.signing, **header}
    with pytest.raises(AuthError) as refused:
        TokenVerifier(auth).verify(_with_header(auth, header))
    assert refused.value.status == 401 and refused.value.reason


def test_the_same_header_with_a_string_kid_verifies(auth: AuthSettings) -> None:
    ring = keyring.load(auth.keys_dir)
    assert TokenVerifier(auth).verify(_with_header(auth, {"kid": ring.signing})).student_id == "ada"
