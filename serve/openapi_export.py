"""Write the API's OpenAPI document (the web editor's TypeScript client is generated from it).

``python -m serve.openapi_export frontend/openapi.json``; a unit test keeps the committed copy
equal to what the app serves.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from learnflow.settings import Settings
from serve.api import create_api


def document() -> dict[str, Any]:
    settings = Settings()
    settings.auth.dev_tokens = True  # the editor's login is part of the contract
    return create_api(settings).openapi()


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    Path(sys.argv[1]).write_text(render())


if __name__ == "__main__":
    main()
