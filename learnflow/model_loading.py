"""The model parameters a process should use, from the settings."""

from __future__ import annotations

from learnflow import param_file
from learnflow.bkt import ModelParameters
from learnflow.settings import MasterySettings


def load_model(settings: MasterySettings) -> ModelParameters:
    """The fitted parameter file if one is configured, else the defaults for every component."""
    if settings.parameters_file is None:
        return ModelParameters()
    return param_file.read(settings.parameters_file).model_parameters()
