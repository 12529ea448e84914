"""Numbered SQL migrations, applied once each and recorded in ``schema_migrations``.

Files are ``NNNN_name.sql`` beside this module. Each runs in its own transaction together with its
bookkeeping row, under an advisory lock, so concurrent ``learnflow migrate`` runs apply nothing
twice. A file edited after it was applied is refused (its checksum no longer matches).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from learnflow.exceptions import LearnFlowError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent
_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x6C6561726E666C6F  # "learnflo"


class MigrationError(LearnFlowError):
    """A migration failed or an applied one was edited afterwards.

    Never edit an applied migration: add a new numbered file instead.
    """


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILENAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration numbers in {directory}")
    return found


async def apply(dsn: str, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply every pending migration in order; return those applied by this call."""
    pending_source = migrations if migrations is not None else discover()
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except (OSError, asyncpg.PostgresError) as err:
        raise MigrationError(f"cannot reach PostgreSQL to migrate: {err}") from err
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version    integer PRIMARY KEY,
                    name       text NOT NULL,
                    checksum   text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )
            rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
            applied = {row["version"]: row for row in rows}
            done: list[Migration] = []
            for migration in pending_source:
                row = applied.get(migration.version)
                if row is not None:
                    if row["checksum"] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version:04d}_{migration.name} was changed "
                            "after it was applied"
                        )
                    continue
                async with conn.transaction():
                    try:
                        await conn.execute(migration.sql)
                    except asyncpg.PostgresError as err:
                        raise MigrationError(
                            f"migration {migration.version:04d}_{migration.name} failed: {err}"
                        ) from err
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) "
                        "VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
                logger.info("applied migration %04d_%s", migration.version, migration.name)
                done.append(migration)
            return done
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()
