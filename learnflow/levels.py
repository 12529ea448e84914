"""The level a student sees per component, derived from the mastery state.

Modelled on Khan Academy's ladder: not started → attempted → familiar → proficient → mastered.
The first four follow P(mastered) through thresholds; "mastered" also needs the skill to hold
over time: a correct attempt on a later (UTC) day than the attempt that first reached
proficient. A wrong answer lowers P(mastered) and can move a student down; falling below
proficient forgets that day, so mastery must be shown again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    NOT_STARTED = "not_started"
    ATTEMPTED = "attempted"
    FAMILIAR = "familiar"
    PROFICIENT = "proficient"
    MASTERED = "mastered"


@dataclass(frozen=True, slots=True)
class LevelThresholds:
    """Lower bounds of P(mastered) per level (settings ``LEARNFLOW_MASTERY__…``)."""

    familiar: float = 0.5
    proficient: float = 0.8
    mastered: float = 0.95

    def __post_init__(self) -> None:
        if not 0.0 < self.familiar < self.proficient <= self.mastered < 1.0:
            raise ValueError(
                "level thresholds must satisfy 0 < familiar < proficient <= mastered < 1, got "
                f"{self.familiar}, {self.proficient}, {self.mastered}"
            )


DEFAULT_THRESHOLDS = LevelThresholds()
