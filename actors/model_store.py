"""Versioned BKT parameter sets in PostgreSQL and the one the shards use (the published one).

A version is stored once and never changed; publishing appends a row to ``model_publications``,
whose newest row every shard and API replica follows. Version 0 is the built-in default.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from learnflow.bkt import BKTParams, ModelParameters
from learnflow.exceptions import LearnFlowError
from learnflow.param_file import ComponentEntry, ParameterFile, ParamsModel

logger = logging.getLogger(__name__)

_PARAMS = ("p_init", "p_learn", "p_guess", "p_slip", "p_forget")


class UnknownModelVersionError(LearnFlowError):
    """No parameter set is stored under this version; ``learnflow model list`` shows those that
    are."""


@dataclass(frozen=True, slots=True)
class VersionSummary:
    version: int
    fitted_at: datetime
    source: str
    data_from: datetime | None
    data_to: datetime | None
    components: int
    fallbacks: int
    metrics: dict[str, Any]
    published_at: datetime | None
    """When it was last published, if ever."""


async def store(
    pool: asyncpg.Pool,
    document: ParameterFile,
    source: str,
    data_from: datetime | None = None,
    data_to: datetime | None = None,
    metrics: dict[str, Any] | None = None,
    component_metrics: dict[str, dict[str, Any]] | None = None,
) -> int:
    """Store ``document`` as the next version (its own ``version`` field is not used); returns
    the version number it got. ``metrics`` are the whole set's held-out scores,
    ``component_metrics`` each component's."""
    per_component = component_metrics or {}
    default = document.default
    async with pool.acquire() as connection, connection.transaction():
        # Two fits ending at once get consecutive numbers, not the same one.
        await connection.execute("LOCK TABLE model_versions IN SHARE ROW EXCLUSIVE MODE")
        version: int = await connection.fetchval(
            "SELECT coalesce(max(version), 0) + 1 FROM model_versions"
        )
        await connection.execute(
            """
            INSERT INTO model_versions (version, fitted_at, source, data_from, data_to, p_init,
                                        p_learn, p_guess, p_slip, p_forget, metrics)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb)
            """,
            version, document.fitted_at, source, data_from, data_to,
            default.p_init, default.p_learn, default.p_guess, default.p_slip, default.p_forget,
            orjson.dumps(metrics or {}).decode(),
        )  # fmt: skip
        await connection.executemany(
            """
            INSERT INTO model_parameters (version, component, p_init, p_learn, p_guess, p_slip,
                                          p_forget, fitted_at, n_students, n_attempts,
                                          log_likelihood, fallback, note, metrics)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb)
            """,
            [
                (
                    version, name, entry.p_init, entry.p_learn, entry.p_guess, entry.p_slip,
                    entry.p_forget, document.fitted_at, entry.n_students, entry.n_attempts,
                    entry.log_likelihood, entry.fallback, entry.note,
                    orjson.dumps(per_component.get(name, {})).decode(),
                )
                for name, entry in document.components.items()
            ],
        )  # fmt: skip
    return version


async def load(pool: asyncpg.Pool, version: int) -> ModelParameters:
    """The parameters of ``version``; :class:`UnknownModelVersionError` if it is not stored."""
    return (await document(pool, version)).model_parameters()


async def document(pool: asyncpg.Pool, version: int) -> ParameterFile:
    """``version`` as the parameter file ``learnflow fit`` writes."""
    async with pool.acquire() as connection:
        header = await connection.fetchrow(
            "SELECT * FROM model_versions WHERE version = $1", version
        )
        if header is None:
            raise UnknownModelVersionError(f"no model version {version} is stored")
        rows = await connection.fetch(
            "SELECT * FROM model_parameters WHERE version = $1 ORDER BY component", version
        )
    return ParameterFile(
        version=version,
        fitted_at=header["fitted_at"],
        default=ParamsModel.of(_params(header)),
        components={
            row["component"]: ComponentEntry(
                **ParamsModel.of(_params(row)).model_dump(),
                n_students=row["n_students"],
                n_attempts=row["n_attempts"],
                log_likelihood=row["log_likelihood"],
                fallback=row["fallback"],
                note=row["note"],
            )
            for row in rows
        },
    )


async def published(pool: asyncpg.Pool) -> int | None:
    """The version published last, ``None`` if none ever was."""
    version: int | None = await pool.fetchval(
        "SELECT version FROM model_publications ORDER BY id DESC LIMIT 1"
    )
    return version


async def publish(pool: asyncpg.Pool, version: int) -> None:
    """Make ``version`` the one every shard applies events with from its next batch on."""
    async with pool.acquire() as connection, connection.transaction():
        exists = await connection.fetchval(
            "SELECT true FROM model_versions WHERE version = $1 FOR SHARE", version
        )
        if not exists:
            raise UnknownModelVersionError(
                f"no model version {version} is stored: nothing published"
            )
        await connection.execute("INSERT INTO model_publications (version) VALUES ($1)", version)


class PublishedModel:
    """The version a process applies (shards) or shows (API priors): the published one, looked
    up at most every ``poll_s``; before any publication, the configured ``initial`` one."""

    def __init__(self, initial: ModelParameters, poll_s: float) -> None:
        self.current = initial
        self._poll_s = poll_s
        self._checked = -math.inf

    @property
    def known(self) -> bool:
        """Whether the published version was looked up at least once."""
        return self._checked != -math.inf

    def claim(self) -> bool:
        """Whether a lookup is due; if so, it counts as made now (a failing one is not retried
        before ``poll_s`` either)."""
        now = time.monotonic()
        if now - self._checked < self._poll_s:
            return False
        self._checked = now
        return True

    async def refresh(self, pool: asyncpg.Pool, force: bool = False) -> None:
        """Switch to the published version if it changed (when due, or at once if ``force``)."""
        if not self.claim() and not force:
            return
        version = await published(pool)
        if version is None or version == self.current.version:
            return
        previous = self.current.version
        self.current = await load(pool, version)
        logger.info("model version %d published: switching from %d", version, previous)


async def versions(pool: asyncpg.Pool) -> list[VersionSummary]:
    """Every stored version, newest first, with its component counts and last publication."""
    rows = await pool.fetch(
        """
        SELECT v.version, v.fitted_at, v.source, v.data_from, v.data_to, v.metrics::text,
               count(p.component) AS components,
               count(p.component) FILTER (WHERE p.fallback) AS fallbacks,
               (SELECT max(published_at) FROM model_publications m
                 WHERE m.version = v.version) AS published_at
          FROM model_versions v LEFT JOIN model_parameters p USING (version)
         GROUP BY v.version ORDER BY v.version DESC
        """
    )
    return [
        VersionSummary(
            row["version"], row["fitted_at"], row["source"], row["data_from"], row["data_to"],
            row["components"], row["fallbacks"], orjson.loads(row["metrics"]),
            row["published_at"],
        )
        for row in rows
    ]  # fmt: skip


def _params(row: asyncpg.Record) -> BKTParams:
    return BKTParams(*(float(row[name]) for name in _PARAMS))
