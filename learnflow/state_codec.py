"""``StudentState`` to and from JSON, exactly: floats in their shortest round-trip form, dates
and times as ISO 8601 with their UTC offset.

A state is written as an array, ``[2, student_id, applied_offset, model_version, {component:
[p_mastered, attempts, correct, last_attempt_at, proficient_since, confirmed_on]}]``, by a
compiled encoder: a checkpoint writes every changed student's state, and Redis keeps (and
logs) every byte of it. States written as objects (``{"v": 1, …}``) still read.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Final, Literal

import msgspec
import orjson

from learnflow.student_state import ComponentMastery, StudentState

_ENCODER: Final = msgspec.json.Encoder()
_DECODER: Final = msgspec.json.Decoder(
    tuple[Literal[2], str, int, int, dict[str, ComponentMastery]]
)


def _array(state: StudentState) -> tuple[int, str, int, int, dict[str, ComponentMastery]]:
    return (2, state.student_id, state.applied_offset, state.model_version, dict(state.components))


def encode(state: StudentState) -> bytes:
    return _ENCODER.encode(_array(state))


def encode_many(states: Iterable[StudentState]) -> list[bytes]:
    """:func:`encode` of each of ``states``, in one call of the encoder (a JSON document never
    holds a raw newline: the lines it writes come apart again)."""
    return _ENCODER.encode_lines([_array(state) for state in states]).split(b"\n")[:-1]


def decode(raw: bytes | str) -> StudentState:
    if raw[:1] in (b"{", "{"):
        return _decode_v1(raw)
    try:
        _, student_id, applied_offset, model_version, components = _DECODER.decode(raw)
    except msgspec.ValidationError as err:
        raise ValueError(f"not a student state: {err}") from err
    return StudentState(student_id, components, applied_offset, model_version)


def _decode_v1(raw: bytes | str) -> StudentState:
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


def _datetime(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _date(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None
