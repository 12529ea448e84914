"""How the ingest loop paces its shard calls, on a topic and shards of the test's own."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from actors import registry
from ingest.consumer import IngestLoop
from learnflow.settings import Settings
from tests.integration.pipeline import (
    assert_matches_fold,
    make_events,
    publish,
    wait_for_lag_zero,
)

pytestmark = pytest.mark.usefixtures("ray_cluster")


@pytest.fixture
def isolated(
    settings: Settings, make_topic: Callable[[int], str]
) -> Iterator[Callable[[int], Settings]]:
    """Settings for a fresh topic, consumer group and shard namespace; shards killed after."""
    made: list[Settings] = []

    def make(max_in_flight_total: int) -> Settings:
        run = uuid.uuid4().hex[:8]
        copy = settings.model_copy(
            update={
                "kafka": settings.kafka.model_copy(
                    update={"events_topic": make_topic(settings.kafka.partitions)}
                ),
                "ingest": settings.ingest.model_copy(
                    update={
                        "mode": "push",  # the loop under test feeds the shards
                        "group_id": f"test-ingest-{run}",
                        "max_in_flight_total": max_in_flight_total,
                    }
                ),
                "ray": settings.ray.model_copy(update={"namespace": f"test-{run}"}),
            }
        )
        made.append(copy)
        return copy

    yield make
    for copy in made:
        registry.kill_shards(copy)


def ingest_events(settings: Settings, seed: int) -> IngestLoop:
    """Publish 6,000 events for 600 students, run an ingest loop until they are committed,
    and check every store against the fold; the stopped loop is returned for its figures."""
    events = make_events(students=600, total=6_000, seed=seed)
    deliveries = publish(settings, events)
    registry.ensure_shards(settings)
    loop = IngestLoop(settings)
    loop.start()
    try:
        wait_for_lag_zero(settings)
    finally:
        loop.stop()
    assert loop.error is None
    assert loop.counts["applied"] == len(events)
    assert_matches_fold(settings, events, deliveries)
    return loop


@pytest.mark.parametrize("cap", [1, 2])
def test_calls_in_flight_never_exceed_the_cap_and_nothing_is_lost(
    isolated: Callable[[int], Settings], cap: int
) -> None:
    loop = ingest_events(isolated(cap), seed=cap)

    assert loop.peak_in_flight == cap


def test_without_a_cap_every_partition_may_have_a_call_in_flight(
    isolated: Callable[[int], Settings],
) -> None:
    loop = ingest_events(isolated(0), seed=3)

    assert loop.peak_in_flight > 2
