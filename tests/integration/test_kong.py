"""The Kong config: rendered from the key set, valid for decK, and verifying our tokens."""

from __future__ import annotations

import subprocess
from pathlib import Path

import jwt
import yaml
from typer.testing import CliRunner

from learnflow import keyring
from learnflow.settings import Settings
from ops.cli import app


def test_rendered_config_validates_and_verifies_cli_tokens(
    tmp_path: Path, settings: Settings
) -> None:
    out = tmp_path / "kong.yml"
    runner = CliRunner()
    rendered = runner.invoke(app, ["kong", "render", "--out", str(out)])
    assert rendered.exit_code == 0, rendered.output

    checked = subprocess.run(
        ["deck", "validate", "--state", str(out)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    config = yaml.safe_load(out.read_text())
    assert config["_format_version"] == "3.0"
    (service,) = config["services"]
    assert service["url"] == settings.serve.url
    routes = {route["name"]: route for route in service["routes"]}
    assert routes["api"]["paths"] == ["/api"] and routes["web"]["paths"] == ["/"]
    (jwt_plugin,) = routes["api"]["plugins"]
    assert jwt_plugin["name"] == "jwt"
    assert jwt_plugin["config"]["claims_to_verify"] == ["exp"]
    assert jwt_plugin["config"]["maximum_expiration"] == 86400
    assert jwt_plugin["config"]["uri_param_names"] == []
    assert {p["name"] for p in service["plugins"]} == {"cors", "rate-limiting"}

    minted = runner.invoke(app, ["token", "--student", "kong-check", "--ttl", "600"])
    assert minted.exit_code == 0, minted.output
    token = minted.stdout.strip().splitlines()[0]
    kid = jwt.get_unverified_header(token)["kid"]
    (consumer,) = config["consumers"]
    secrets = {s["key"]: s for s in consumer["jwt_secrets"]}
    assert secrets[kid]["algorithm"] == "RS256"
    claims = jwt.decode(
        token,
        secrets[kid]["rsa_public_key"],
        algorithms=["RS256"],
        audience=settings.auth.audience,
    )
    assert claims["sub"] == "kong-check"
    assert claims["exp"] - claims["iat"] == 600


def test_rotation_keeps_old_keys_until_their_tokens_expire(
    tmp_path: Path, settings: Settings
) -> None:
    auth = settings.auth.model_copy(update={"keys_dir": tmp_path / "keys"})
    ring, created = keyring.init(auth.keys_dir)
    assert created
    old_token, _ = keyring.mint(ring, auth, "rotating", ttl_s=3600)
    rotated = keyring.rotate(auth.keys_dir, auth)
    assert rotated.signing != ring.signing
    public = rotated.public_keys()
    assert set(public) == {ring.signing, rotated.signing}
    assert (
        jwt.decode(old_token, public[ring.signing], algorithms=["RS256"], audience=auth.audience)[
            "sub"
        ]
        == "rotating"
    )
    later = rotated.keys[ring.signing].valid_until
    assert later is not None
    assert set(rotated.public_keys(now=later + 1)) == {rotated.signing}
    pruned = keyring.rotate(auth.keys_dir, auth, now=later + 1)
    assert ring.signing not in pruned.keys
    assert not pruned.private_path(ring.signing).exists()
    assert oct(pruned.private_path(pruned.signing).stat().st_mode & 0o777) == "0o600"
