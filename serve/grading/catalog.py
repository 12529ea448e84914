"""The exercise catalog: one TOML file per exercise in ``serve/catalog``.

Each file holds the statement, starter code, components, tests and a reference solution. The
first tests may be examples (``example = true``: their expected values are shown to students);
the rest are hidden (students learn only whether each passed).
Function exercises call ``function(*args)`` and compare the return value; program exercises feed
``stdin`` and compare everything printed. An expected value TOML cannot spell (``None``) is
written as ``expected_json``.
"""

from __future__ import annotations

import json
import tomllib
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from learnflow.events import ComponentId
from learnflow.exceptions import LearnFlowError

CATALOG_DIR = Path(__file__).resolve().parent.parent / "catalog"


class CatalogError(LearnFlowError):
    """An exercise file is missing, malformed or inconsistent."""


class HiddenTest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    function: str | None = None
    args: list[Any] = Field(default_factory=list)
    stdin: str = ""
    expected: Any = None
    expected_json: str | None = None
    example: bool = False
    """An example shows the student its input's name, the expected value and what the program
    gave; a hidden test (the default) says only passed or failed, never its expected value."""

    def expected_value(self) -> Any:
        if self.expected_json is not None:
            return json.loads(self.expected_json)
        return self.expected

    def call(self) -> dict[str, Any]:
        """What enters the sandbox: the inputs, never the expected value."""
        if self.function is not None:
            return {"function": self.function, "args": self.args, "example": self.example}
        return {"stdin": self.stdin, "example": self.example}


class Exercise(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    title: str = Field(min_length=1, max_length=200)
    components: tuple[ComponentId, ...] = Field(min_length=1, max_length=16)
    kind: Literal["function", "program"] = "function"
    statement: str = Field(min_length=1)
    starter: str
    solution: str
    tests: tuple[HiddenTest, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _tests_match_kind(self) -> Exercise:
        for test in self.tests:
            if (self.kind == "function") != (test.function is not None):
                raise ValueError(
                    f"test {test.name!r}: a {self.kind} exercise's tests "
                    f"{'need' if self.kind == 'function' else 'take no'} a function"
                )
            if (test.expected is None) == (test.expected_json is None):
                raise ValueError(f"test {test.name!r}: give exactly one of expected, expected_json")
        examples = [test.example for test in self.tests]
        if examples != sorted(examples, reverse=True):
            raise ValueError("example tests come first, before every hidden test")
        return self

    def public(self) -> dict[str, Any]:
        """What students see: never the hidden tests or the solution."""
        return {
            "id": self.id,
            "title": self.title,
            "components": list(self.components),
            "kind": self.kind,
            "statement": self.statement.strip(),
            "starter": self.starter.lstrip("\n"),
            "tests": len(self.tests),
        }


def load_file(path: Path) -> Exercise:
    try:
        data = tomllib.loads(path.read_text())
        return Exercise.model_validate(data)
    except tomllib.TOMLDecodeError as err:
        raise CatalogError(f"{path}: not valid TOML: {err}") from err
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in err.errors()
        )
        raise CatalogError(f"{path}: {problems}") from err


@cache
def load(directory: Path = CATALOG_DIR) -> dict[str, Exercise]:
    """Every exercise of the catalog by id, in file order."""
    exercises: dict[str, Exercise] = {}
    for path in sorted(directory.glob("*.toml")):
        exercise = load_file(path)
        if exercise.id in exercises:
            raise CatalogError(f"{path}: exercise id {exercise.id!r} is used twice")
        exercises[exercise.id] = exercise
    if not exercises:
        raise CatalogError(f"no exercises in {directory}")
    return exercises
