from pathlib import Path

from serve.openapi_export import render

SNAPSHOT = Path(__file__).resolve().parents[3] / "frontend" / "openapi.json"


def test_the_web_editor_is_generated_from_the_current_api() -> None:
    assert SNAPSHOT.read_text() == render(), (
        "the API changed: run `.venv/bin/python -m serve.openapi_export frontend/openapi.json`"
    )
