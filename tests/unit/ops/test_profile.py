"""The local profiles: ``learnflow up --cluster`` writes the settings every later command reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from learnflow.settings import Settings
from ops.platform import profile
from ops.platform.exceptions import PlatformError


@pytest.fixture
def profile_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / ".run" / "profile.env"
    monkeypatch.setattr(profile, "PROFILE_FILE", path)
    return path


def test_the_cluster_profile_is_read_by_settings_until_cleared(profile_file: Path) -> None:
    assert profile.active() == "single"
    profile.use_cluster(running=[])
    assert profile.active() == "cluster"
    settings = Settings(_env_file=profile_file)  # type: ignore[call-arg]
    assert settings.kafka.bootstrap_servers.count(",") == 2
    assert (settings.kafka.replication_factor, settings.kafka.min_insync_replicas) == (3, 2)
    assert settings.local.ray_worker_nodes == 1
    assert settings.local.run_dir.name == "cluster"
    assert settings.serve.max_replicas_per_node == 1
    assert profile.describe(settings).startswith("cluster profile: 3 Kafka node(s), 2 Ray node(s)")
    profile.clear()
    assert profile.active() == "single" and not profile_file.exists()


def test_the_environment_wins_over_the_profile(
    profile_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile.use_cluster(running=[])
    monkeypatch.setenv("LEARNFLOW_SERVE__INGRESS_REPLICAS", "4")
    settings = Settings(_env_file=profile_file)  # type: ignore[call-arg]
    assert settings.serve.ingress_replicas == 4
    assert settings.local.ray_worker_nodes == 1


def test_the_cluster_profile_is_refused_while_the_single_node_platform_runs(
    profile_file: Path,
) -> None:
    with pytest.raises(PlatformError, match="learnflow down"):
        profile.use_cluster(running=["redis", "kafka"])
    assert not profile_file.exists()
