"""The versioned JSON file of fitted parameters that ``learnflow fit`` writes and shards load."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from learnflow.bkt import BKTParams, ModelParameters
from learnflow.exceptions import LearnFlowError

if TYPE_CHECKING:  # fitting pulls in numba: the shards that read this file never need it
    from learnflow.fitting import ComponentFit

FORMAT: Final = "learnflow.bkt-parameters"


class ParameterFileError(LearnFlowError):
    """A parameter file could not be read or is invalid; refit or fix the named field."""


class ParamsModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    p_init: float = Field(ge=0, le=1)
    p_learn: float = Field(ge=0, le=1)
    p_guess: float = Field(ge=0, lt=0.5)
    p_slip: float = Field(ge=0, lt=0.5)
    p_forget: float = Field(default=0.0, ge=0, le=1)

    @classmethod
    def of(cls, params: BKTParams) -> ParamsModel:
        return cls(
            p_init=params.p_init,
            p_learn=params.p_learn,
            p_guess=params.p_guess,
            p_slip=params.p_slip,
            p_forget=params.p_forget,
        )

    def to_params(self) -> BKTParams:
        return BKTParams(self.p_init, self.p_learn, self.p_guess, self.p_slip, self.p_forget)


class ComponentEntry(ParamsModel):
    n_students: int = Field(ge=0)
    n_attempts: int = Field(ge=0)
    log_likelihood: float | None
    fallback: bool
    note: str = ""


class ParameterFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["learnflow.bkt-parameters"] = FORMAT
    schema_version: Literal[1] = 1
    version: int = Field(ge=0)
    fitted_at: AwareDatetime
    default: ParamsModel
    components: dict[str, ComponentEntry]

    def model_parameters(self) -> ModelParameters:
        return ModelParameters(
            version=self.version,
            components={name: entry.to_params() for name, entry in self.components.items()},
            default=self.default.to_params(),
        )


def build(fits: list[ComponentFit], version: int, default: BKTParams) -> ParameterFile:
    return ParameterFile(
        version=version,
        fitted_at=datetime.now(UTC),
        default=ParamsModel.of(default),
        components={
            fit.component: ComponentEntry(
                **ParamsModel.of(fit.params).model_dump(),
                n_students=fit.n_students,
                n_attempts=fit.n_attempts,
                log_likelihood=fit.log_likelihood,
                fallback=fit.fallback,
                note=fit.note,
            )
            for fit in fits
        },
    )


def write(path: Path, document: ParameterFile) -> None:
    """Write atomically: a reader never sees half a file."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(document.model_dump_json(indent=2) + "\n")
    partial.replace(path)


def read(path: Path) -> ParameterFile:
    try:
        return ParameterFile.model_validate_json(path.read_bytes())
    except FileNotFoundError as err:
        raise ParameterFileError(f"parameter file {path} does not exist") from err
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<file>'}: {e['msg']}" for e in err.errors()
        )
        raise ParameterFileError(f"parameter file {path} is invalid: {problems}") from err
