"""The Ray cluster launcher config: rendered for given machines, checked as ``ray up`` checks
it (Ray's ``ray-schema.json``, then ``validate_config(prepare_config(...))``)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import ray.autoscaler
import yaml
from jsonschema import Draft7Validator
from ray.autoscaler._private.util import prepare_config, validate_config

from learnflow.ray_launcher import LauncherConfigError, launcher_config, render
from learnflow.settings import Settings

SCHEMA = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def config_errors(config: dict[str, Any]) -> list[str]:
    errors = [error.message for error in Draft7Validator(SCHEMA).iter_errors(config)]
    if errors:
        return errors
    try:
        validate_config(prepare_config(copy.deepcopy(config)))
    except Exception as err:  # Ray's own checks raise what they like
        return [str(err)]
    return []


def a_config(**overrides: Any) -> dict[str, Any]:
    arguments = {
        "head": "10.0.0.5",
        "workers": ["10.0.0.6", "node-7.example.org"],
        "ssh_user": "learnflow",
        "project": Path("/srv/learnflow"),
        "token": Path("/srv/learnflow/.run/ray/auth-token"),
    }
    return launcher_config(Settings(), **{**arguments, **overrides})


def test_a_rendered_config_passes_rays_checks_with_the_settings_ports() -> None:
    settings = Settings()
    config = yaml.safe_load(render(a_config()))
    assert config_errors(config) == []
    assert config["provider"] == {
        "type": "local",
        "head_ip": "10.0.0.5",
        "worker_ips": ["10.0.0.6", "node-7.example.org"],
    }
    assert config["max_workers"] == 2
    head_start = " ".join(config["head_start_ray_commands"])
    assert f"--port={settings.ray.gcs_port}" in head_start
    assert f"--dashboard-port={settings.ray.dashboard_port}" in head_start
    assert "RAY_AUTH_MODE=token" in " ".join(config["worker_start_ray_commands"])


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda c: c.update(max_workers="two"), "'two' is not of type"),
        (lambda c: c.pop("provider"), "'provider' is a required property"),
        (lambda c: c.update(head_start_ray_command=[]), "Additional properties"),
    ],
)
def test_a_broken_config_is_refused(break_it: Any, expected: str) -> None:
    config = a_config()
    break_it(config)
    assert any(expected in error for error in config_errors(config)), config_errors(config)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"head": "HEAD_NODE_IP"}, "neither an IP address nor a hostname"),
        ({"workers": ["10.0.0.6", "10.0.0.300"]}, "neither an IP address nor a hostname"),
        ({"workers": ["10.0.0.5"]}, "is the head"),
        ({"workers": ["10.0.0.6", "10.0.0.6"]}, "named twice"),
    ],
)
def test_an_address_that_names_no_machine_is_refused(
    overrides: dict[str, Any], expected: str
) -> None:
    with pytest.raises(LauncherConfigError, match=expected):
        a_config(**overrides)
