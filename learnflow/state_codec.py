"""``StudentState`` to and from JSON, exactly: floats in their shortest round-trip form, dates
and times as ISO 8601 with their UTC offset."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import orjson

from learnflow.student_state import ComponentMastery, StudentState


def encode(state: StudentState) -> bytes:
    return orjson.dumps(
        {
            "v": 1,
            "student_id": state.student_id,
            "applied_offset": state.applied_offset,
            "model_version": state.model_version,
            "components": {name: _component(mastery) for name, mastery in state.components.items()},
        }
    )


def decode(raw: bytes | str) -> StudentState:
    data = orjson.loads(raw)
    if data.get("v") != 1:
        raise ValueError(f"unknown student state version {data.get('v')!r}")
    return StudentState(
        student_id=data["student_id"],
        applied_offset=int(data["applied_offset"]),
        model_version=int(data.get("model_version", 0)),
        components={
            name: ComponentMastery(
                p_mastered=float(c["p"]),
                attempts=int(c["attempts"]),
                correct=int(c["correct"]),
                last_attempt_at=_datetime(c.get("last")),
                proficient_since=_date(c.get("proficient_since")),
                confirmed_on=_date(c.get("confirmed_on")),
            )
            for name, c in data["components"].items()
        },
    )


def _component(mastery: ComponentMastery) -> dict[str, Any]:
    return {
        "p": mastery.p_mastered,
        "attempts": mastery.attempts,
        "correct": mastery.correct,
        "last": mastery.last_attempt_at,
        "proficient_since": mastery.proficient_since,
        "confirmed_on": mastery.confirmed_on,
    }


def _datetime(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _date(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None
