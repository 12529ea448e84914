from __future__ import annotations

import json
from pathlib import Path

import pytest

from learnflow import fitting, param_file, synthetic
from learnflow.bkt import DEFAULT_PARAMS, BKTParams


def test_a_fit_round_trips_through_the_file(tmp_path: Path) -> None:
    truth = {"loops": BKTParams(0.3, 0.2, 0.2, 0.1)}
    fits = fitting.fit(synthetic.generate(truth, 200, 8, seed=1))
    path = tmp_path / "params.json"

    param_file.write(path, param_file.build(fits, version=7, default=DEFAULT_PARAMS))
    model = param_file.read(path).model_parameters()

    assert model.version == 7
    assert model.for_component("loops") == fits[0].params
    assert model.for_component("unknown") == DEFAULT_PARAMS
    assert not list(tmp_path.glob(".*partial"))


def test_an_invalid_file_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "params.json"
    fits = fitting.fit(synthetic.generate({"loops": BKTParams(0.3, 0.2, 0.2, 0.1)}, 100, 5, 2))
    document = json.loads(param_file.build(fits, 1, DEFAULT_PARAMS).model_dump_json())
    document["components"]["loops"]["p_slip"] = 0.7
    path.write_text(json.dumps(document))

    with pytest.raises(param_file.ParameterFileError, match=r"components.loops.p_slip"):
        param_file.read(path)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(param_file.ParameterFileError, match="does not exist"):
        param_file.read(tmp_path / "nope.json")
