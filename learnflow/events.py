"""The wire contract of ``learning.events``: versioned, strictly validated event models.

A Kafka value is the JSON of one model below; its key is the ``student_id`` as UTF-8, so every event
of a student lands on one partition, in order. :func:`parse_event` is the one way in from bytes:
it either returns a model or raises :class:`~learnflow.exceptions.InvalidEventError` naming the
offending fields, which the ingest sends to the dead-letter topic.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Final, Literal, get_type_hints
from uuid import UUID, uuid5

import msgspec

from learnflow import students
from learnflow.exceptions import InvalidEventError
from learnflow.students import StudentId

MAX_EVENT_BYTES: Final = 64 * 1024
"""Values larger than this are rejected before they are parsed."""

ExerciseId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
"""Lowercase ASCII letters, digits and ``_ . -``, starting with a letter or digit."""
ComponentId = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
"""Lowercase ASCII letters, digits and ``_ -``, starting with a letter."""

_EXERCISE: Final = r"[a-z0-9][a-z0-9_.-]*"
_COMPONENT: Final = r"[a-z][a-z0-9_-]*"
# Every id of an event in one match (one call instead of one per id, on the hot path): the ids
# joined by NUL, which no id may hold.
_IDS: Final = re.compile(rf"{students.WHOLE_ID}\x00{_EXERCISE}(?:\x00{_COMPONENT})+", re.ASCII)
_ID_RULES: Final = {
    "student_id": (re.compile(students.WHOLE_ID, re.ASCII), students.RULE),
    "exercise_id": (
        re.compile(_EXERCISE, re.ASCII),
        "lowercase letters, digits and _ . -, starting with a letter or digit",
    ),
    "components": (
        re.compile(_COMPONENT, re.ASCII),
        "lowercase letters, digits and _ -, starting with a letter",
    ),
}


def _bad_ids(field: str, value: object) -> list[tuple[str, str]]:
    """The ids in one field (``components``: each of them) that break their rule, as
    (field path, reason); none if they follow it."""
    matcher, rule = _ID_RULES[field]
    if field != "components":
        return [] if matcher.fullmatch(str(value)) else [(field, rule)]
    values = value if isinstance(value, tuple | list) else ()
    return [(f"components.{n}", rule) for n, one in enumerate(values)
            if not matcher.fullmatch(str(one))]  # fmt: skip


_KNOWN_STUDENTS: Final[set[str]] = set()
_KNOWN_EXERCISES: Final[set[str]] = set()
_KNOWN_COMPONENTS: Final[set[str]] = set()
_KNOWN_MAX: Final = 1 << 17
"""Ids seen to follow their rule, by field (each set emptied when it reaches ``_KNOWN_MAX``):
most events name ids seen before, and looking one up costs a fraction of matching it."""


def _check_ids(student_id: str, exercise_id: str, components: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming the first id that breaks its rule; note them all as known
    if none does."""
    ids = "\x00".join((student_id, exercise_id, *components))
    if _IDS.fullmatch(ids) is None or ids.count("\x00") != len(components) + 1:
        bad = (pair for f, value in zip(_ID_RULES, (student_id, exercise_id, components),
                                        strict=True)
               for pair in _bad_ids(f, value))  # fmt: skip
        field, reason = next(bad, ("components", "at least one is needed"))
        raise ValueError(f"{field}: {reason}")
    for known, new in ((_KNOWN_STUDENTS, (student_id,)), (_KNOWN_EXERCISES, (exercise_id,)),
                       (_KNOWN_COMPONENTS, components)):  # fmt: skip
        if len(known) >= _KNOWN_MAX:
            known.clear()
        known.update(new)


class AttemptGraded(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False
):
    """A student's exercise attempt, graded: the event every mastery update starts from.

    ``event_id`` is :func:`attempt_event_id` of the student and the request's idempotency key,
    so a retried submit can never be counted twice, and no student's key can collide with
    another student's attempt.

    The constraints are checked where bytes come in (:func:`parse_event`), by a compiled
    decoder: it runs once per event on the ingest's hot path. The rules of ids and those that
    relate fields are checked on construction as well. It holds no container that could refer
    back to it, so the cyclic collector never walks it (``gc=False``).
    """

    schema_version: Literal[1] = 1
    event_type: Literal["attempt.graded"] = "attempt.graded"
    event_id: UUID
    student_id: StudentId
    exercise_id: ExerciseId
    components: Annotated[tuple[ComponentId, ...], msgspec.Meta(min_length=1, max_length=16)]
    passed: bool
    score: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
    tests_total: Annotated[int, msgspec.Meta(ge=1, le=1000)]
    tests_passed: Annotated[int, msgspec.Meta(ge=0, le=1000)]
    duration_ms: Annotated[int, msgspec.Meta(ge=0, le=3_600_000)]
    submitted_at: Annotated[datetime, msgspec.Meta(tz=True)]

    def __post_init__(self) -> None:
        components = self.components
        if not (
            components
            and self.student_id in _KNOWN_STUDENTS
            and self.exercise_id in _KNOWN_EXERCISES
            and _KNOWN_COMPONENTS.issuperset(components)
        ):
            _check_ids(self.student_id, self.exercise_id, components)
        count = len(components)
        if count > 1 and (
            components[0] == components[1] if count == 2 else len(set(components)) != count
        ):
            raise ValueError("components: must not repeat")
        if self.tests_passed > self.tests_total:
            raise ValueError(
                f"tests_passed: {self.tests_passed} exceeds tests_total ({self.tests_total})"
            )

    @property
    def key(self) -> bytes:
        """The Kafka message key: the student id, UTF-8."""
        return self.student_id.encode()

    def to_json(self) -> bytes:
        """The event's JSON, checked as :func:`parse_event` checks it (raising
        ``InvalidEventError``): no producer puts an event on the topic that the shards refuse."""
        raw = _ENCODER.encode(self)
        parse_event(raw)
        return raw


_ENCODER: Final = msgspec.json.Encoder()
_DECODER: Final = msgspec.json.Decoder(AttemptGraded)
_FIELD_TYPES: Final = {
    name: kind
    for name, kind in get_type_hints(AttemptGraded, include_extras=True).items()
    if name in AttemptGraded.__struct_fields__
}

_ATTEMPT_IDS: Final = UUID("6f1c2b0e-5a0d-4f43-9d55-2d1f6c1e8a71")


def attempt_event_id(student_id: str, idempotency_key: UUID) -> UUID:
    """The event id of a student's submit: a UUIDv5 of (student, key).

    Keys are chosen by clients, so a key alone is only unique per student; two students using
    the same key (by chance or on purpose) still make two distinct events.
    """
    return uuid5(_ATTEMPT_IDS, f"{student_id}/{idempotency_key}")


LearningEvent = AttemptGraded
"""Every event type on ``learning.events`` (one so far)."""

_REQUIRED_ON_WIRE: Final = ("schema_version", "event_type")
"""Fields with a default for those who make events, which a value on the wire must still name."""
_NAMED_ON_WIRE: Final = tuple(f'"{name}"'.encode() for name in _REQUIRED_ON_WIRE)


def parse_event(raw: bytes | None) -> LearningEvent:
    """Validate one Kafka value; raise ``InvalidEventError`` naming the bad fields."""
    if raw is None:
        raise InvalidEventError("event value is empty (null)", ("<value>",))
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEventError(
            f"event value is {len(raw)} bytes, over the {MAX_EVENT_BYTES}-byte limit", ("<value>",)
        )
    try:
        event = _DECODER.decode(raw)
    except msgspec.ValidationError as err:
        raise _every_error(raw) or invalid_event_from(err) from err
    except msgspec.DecodeError as err:
        raise InvalidEventError(f"Invalid JSON: {err}", ("<value>",)) from err
    # No string field may hold a quote, so a name in quotes is a key. A value that names one
    # with escapes instead is looked at whole (no encoder writes one).
    if not (_NAMED_ON_WIRE[0] in raw and _NAMED_ON_WIRE[1] in raw):
        missing = _every_error(raw)
        if missing is not None:
            raise missing
    return event


def _every_error(raw: bytes) -> InvalidEventError | None:
    """Every field of a JSON object that is missing, unknown or invalid on its own (the
    decoder stops at the first); ``None`` if there is none such."""
    document = msgspec.json.decode(raw)
    if not isinstance(document, dict):
        return None
    found: list[InvalidEventError] = []
    for name, kind in _FIELD_TYPES.items():
        if name not in document:
            found.append(InvalidEventError(f"{name}: Field required", (name,)))
            continue
        try:
            msgspec.convert(document[name], kind)
        except msgspec.ValidationError as err:
            found.append(invalid_event_from(err, prefix=name))
            continue
        if name in _ID_RULES:
            found += (InvalidEventError(f"{path}: {reason}", (path,))
                      for path, reason in _bad_ids(name, document[name]))  # fmt: skip
    found += (InvalidEventError(f"{name}: unknown field", (name,))
              for name in document if name not in _FIELD_TYPES)  # fmt: skip
    if not found:
        return None
    fields = tuple(field for error in found for field in error.fields)
    return InvalidEventError("; ".join(error.reason for error in found), fields)


_AT: Final = re.compile(r"^(?P<reason>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_NAMED: Final = re.compile(r"field `(?P<name>[^`]+)`")


def invalid_event_from(err: msgspec.ValidationError, prefix: str = "") -> InvalidEventError:
    """The decoder's error as an ``InvalidEventError`` naming a dotted field path
    (``components.0``); ``prefix``: the field a value was decoded as."""
    match = _AT.match(str(err))
    reason, path = (match["reason"], match["path"] or "") if match else (str(err), "")
    field = ".".join(part for part in (prefix, *re.split(r"[.\[\]]+", path)) if part)
    if not field:
        named = _NAMED.search(reason)
        first = reason.split(":", 1)[0]
        if named is not None:
            field = named["name"]
        elif first in _FIELD_TYPES:  # a rule of __post_init__: "field: reason"
            field, reason = first, reason.split(":", 1)[1].strip()
        else:
            field = "<value>"
    return InvalidEventError(f"{field}: {reason}", (field,))
