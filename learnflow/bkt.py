"""Bayesian Knowledge Tracing: parameters and the O(1) update of P(mastered) on one attempt.

A student either has or has not mastered a component (a skill). Before an attempt the model
predicts ``P(correct) = pL(1 − slip) + (1 − pL)·guess``; the answer updates pL by Bayes' rule, and
then the student may learn (``p_learn``) or forget (``p_forget``) before the next attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

MAX_GUESS_SLIP = 0.5
"""``p_guess`` and ``p_slip`` stay below this: above it, "mastered" would predict worse answers
than "not mastered" and the model would be swapped."""


@dataclass(frozen=True, slots=True)
class BKTParams:
    """One component's parameters; every probability is validated on construction."""

    p_init: float
    p_learn: float
    p_guess: float
    p_slip: float
    p_forget: float = 0.0

    def __post_init__(self) -> None:
        for name in ("p_init", "p_learn", "p_forget"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}={value} is not a probability")
        for name in ("p_guess", "p_slip"):
            value = getattr(self, name)
            if not 0.0 <= value < MAX_GUESS_SLIP:
                raise ValueError(f"{name}={value} must lie in [0, {MAX_GUESS_SLIP})")

    def as_tuple(self) -> tuple[float, float, float, float, float]:
        return (self.p_init, self.p_learn, self.p_guess, self.p_slip, self.p_forget)

    def predict_correct(self, p_mastered: float) -> float:
        """P(the next attempt is correct) for a student with this P(mastered)."""
        return p_mastered * (1.0 - self.p_slip) + (1.0 - p_mastered) * self.p_guess

    def update(self, p_mastered: float, correct: bool) -> float:
        """P(mastered) before the next attempt, after observing this one."""
        if correct:
            if_mastered = p_mastered * (1.0 - self.p_slip)
            if_not = (1.0 - p_mastered) * self.p_guess
        else:
            if_mastered = p_mastered * self.p_slip
            if_not = (1.0 - p_mastered) * (1.0 - self.p_guess)
        likelihood = if_mastered + if_not
        # An answer the model calls impossible (e.g. p_guess = 0) carries no evidence.
        posterior = if_mastered / likelihood if likelihood > 0.0 else p_mastered
        after = posterior * (1.0 - self.p_forget) + (1.0 - posterior) * self.p_learn
        return min(1.0, after)


DEFAULT_PARAMS = BKTParams(p_init=0.2, p_learn=0.15, p_guess=0.2, p_slip=0.1)
"""Used for components without fitted parameters (new, or too little data to fit)."""


@dataclass(frozen=True, slots=True)
class ModelParameters:
    """Every component's parameters, as one fitted version; unknown components get the default."""

    version: int = 0
    components: Mapping[str, BKTParams] = field(default_factory=dict)
    default: BKTParams = DEFAULT_PARAMS

    def __post_init__(self) -> None:
        object.__setattr__(self, "components", MappingProxyType(dict(self.components)))

    def for_component(self, component: str) -> BKTParams:
        return self.components.get(component, self.default)
