"""The API's FastAPI app on plain uvicorn (the baseline of ``benchmarks.api``).

Same app, same handlers as the Serve ingress; connected to the same Ray cluster, so progress
reads go to the same shard actors. Usage: ``python -m benchmarks.api_server PORT``.
"""

from __future__ import annotations

from learnflow.platform import ray as local_ray
from learnflow.settings import Settings

local_ray.use_cluster_env(Settings())

import sys

import uvicorn

from serve.api import create_api


def main() -> None:
    port = int(sys.argv[1])
    settings = Settings()
    local_ray.connect(settings)
    uvicorn.run(
        create_api(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
