"""The DB-less Kong configuration (``kong/kong.yml``), rendered from the current key set.

Kong checks every token's RS256 signature and ``exp`` at the edge (the consumer's credentials
are our public keys, found by the token's ``kid``) and applies a coarse per-IP rate limit; the
Serve API verifies again and enforces the per-student limit (see ``kong/README.md``).
"""

from __future__ import annotations

import secrets
from typing import Any

import yaml

from learnflow.keyring import ALGORITHM, KeyRing
from learnflow.settings import Settings

CONSUMER = "learnflow-students"
PER_IP_PER_MINUTE = 1200
"""Coarse: a classroom behind one NAT address must still get through."""


def config(settings: Settings, ring: KeyRing) -> dict[str, Any]:
    upstream = f"http://{settings.serve.host}:{settings.serve.port}"
    jwt = {
        "name": "jwt",
        "config": {
            "claims_to_verify": ["exp"],
            "maximum_expiration": settings.auth.max_lifetime_s,
            "uri_param_names": [],
            "cookie_names": [],
            "header_names": ["authorization"],
            "key_claim_name": "kid",
            "secret_is_base64": False,
            "run_on_preflight": False,
        },
    }
    return {
        "_format_version": "3.0",
        "services": [
            {
                "name": "learnflow",
                "url": upstream,
                "connect_timeout": 5000,
                "read_timeout": 60000,
                "write_timeout": 60000,
                "routes": [
                    {
                        "name": "api",
                        "paths": ["/api"],
                        "strip_path": False,
                        "preserve_host": True,
                        "plugins": [jwt],
                    },
                    {
                        "name": "api-public",
                        "paths": [
                            "/api/v1/exercises",
                            "/api/v1/healthz",
                            "/api/v1/readyz",
                        ],
                        "methods": ["GET", "HEAD", "OPTIONS"],
                        "strip_path": False,
                        "preserve_host": True,
                    },
                    {
                        "name": "web",
                        "paths": ["/"],
                        "methods": ["GET", "HEAD"],
                        "strip_path": False,
                        "preserve_host": True,
                    },
                ],
                "plugins": [
                    {
                        "name": "cors",
                        "config": {
                            "origins": ["*"],
                            "methods": ["GET", "POST", "OPTIONS"],
                            "headers": ["Authorization", "Content-Type", "Idempotency-Key"],
                            "exposed_headers": ["Retry-After", "Idempotent-Replayed"],
                            "max_age": 3600,
                            "credentials": False,
                        },
                    },
                    {
                        "name": "rate-limiting",
                        "config": {
                            "minute": PER_IP_PER_MINUTE,
                            "limit_by": "ip",
                            "policy": "local",
                        },
                    },
                ],
            }
        ],
        "consumers": [
            {
                "username": CONSUMER,
                "jwt_secrets": [
                    {
                        "key": kid,
                        "algorithm": ALGORITHM,
                        "rsa_public_key": pem,
                        # Unused with RS256 (Kong verifies with rsa_public_key alone), but the
                        # schema wants one: random, so it can never be a usable HMAC key.
                        "secret": secrets.token_hex(32),
                    }
                    for kid, pem in sorted(ring.public_keys().items())
                ],
            }
        ],
    }


def render(settings: Settings, ring: KeyRing) -> str:
    header = (
        "# Rendered by `learnflow kong render` from the key set in "
        f"{ring.directory}; do not edit.\n"
    )
    body = yaml.safe_dump(config(settings, ring), sort_keys=False, width=120)
    return header + body
