"""The peer of ``make bench-ingest``: Quix Streams on the same stateful job, in its own virtualenv.

Run by ``benchmarks.ingest`` with ``.run/quix-venv/bin/python`` (Quix Streams 3.28.1 pins
libraries ours conflict with; ``benchmarks/quix-requirements.txt``). It consumes the events the
benchmark pre-produced, from the beginning, in a fresh consumer group, and keeps each student's
P(mastered) per component in Quix's RocksDB state, keyed by the message key (the student), with
its changelog topics on (the state survives the process) and at-least-once processing: the BKT
update is ``learnflow.bkt``'s, the one the shards apply.

Prints one JSON line: events processed, seconds from the first event to the last checkpoint
committed, and the rate.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quixstreams import Application, State

from learnflow.bkt import ModelParameters

MODEL = ModelParameters()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--events", type=int, required=True)
    args = parser.parse_args()

    first: list[float] = []

    def update(value: dict[str, Any], state: State) -> None:
        if not first:
            first.append(time.perf_counter())
        mastery: dict[str, float] = state.get("mastery") or {}
        for component in value["components"]:
            params = MODEL.for_component(component)
            before = mastery.get(component, params.p_init)
            mastery[component] = params.update(before, value["passed"])
        state.set("mastery", mastery)

    with tempfile.TemporaryDirectory(prefix="quix-state-") as state_dir:
        app = Application(
            broker_address=args.broker,
            consumer_group=args.group,
            auto_offset_reset="earliest",
            processing_guarantee="at-least-once",
            use_changelog_topics=True,
            state_dir=state_dir,
            loglevel=logging.WARNING,
        )
        frame = app.dataframe(app.topic(args.topic, value_deserializer="json"))
        frame.update(update, stateful=True)
        app.run(count=args.events, collect=False)
        finished = time.perf_counter()
    seconds = finished - first[0]
    print(  # noqa: T201 - the benchmark reads this line
        json.dumps({"events": args.events, "seconds": seconds, "rate": args.events / seconds})
    )


if __name__ == "__main__":
    main()
