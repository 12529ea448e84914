"""PostgreSQL from Debian's packages, run as the ``postgres`` OS user on its own data dir and port.

First start: ``initdb`` into ``.run/postgres/data`` (local socket trust for the ``postgres``
superuser, SCRAM passwords over TCP), then the LearnFlow role and database are created. Every start
re-applies the role's password from the settings.
"""

from __future__ import annotations

import os
import pwd
import re
import signal
import subprocess
from pathlib import Path

from learnflow.deadline import Deadline
from learnflow.settings import Settings
from ops.platform import processes
from ops.platform.exceptions import MissingDependencyError, ServiceStartError
from ops.platform.processes import ServiceFiles
from ops.platform.status import ComponentStatus

NAME = "postgres"
_PG_ROOT = Path("/usr/lib/postgresql")


def files(settings: Settings) -> ServiceFiles:
    return ServiceFiles.under(settings.local.run_dir, NAME)


def bin_dir() -> Path:
    """The newest installed server version's binaries."""
    versions = sorted(
        (p for p in _PG_ROOT.glob("*/bin") if (p / "postgres").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not versions:
        raise MissingDependencyError("PostgreSQL server not found: apt-get install postgresql")
    return versions[-1]


def start(settings: Settings, deadline: Deadline) -> ComponentStatus:
    svc = files(settings)
    pg = settings.postgres
    data, sock = _dirs(settings)
    pid = processes.running_pid(svc)
    if pid is None:
        os_user = settings.local.postgres_os_user
        _prepare_dirs(settings, os_user)
        if not (data / "PG_VERSION").exists():
            _initdb(data, os_user, svc)
        pid = processes.spawn(
            svc,
            [
                str(bin_dir() / "postgres"),
                "-D", str(data),
                "-p", str(pg.port),
                "-k", str(sock),
                "-c", f"listen_addresses={pg.host}",
                "-c", "max_connections=200",
                "-c", "shared_buffers=128MB",
                "-c", "fsync=on",
            ],
            user=os_user,
        )  # fmt: skip
    processes.wait_until(
        svc, lambda: _isready(sock, pg.port), deadline, f"PostgreSQL on port {pg.port}", pid=pid
    )
    _ensure_role_and_database(settings, sock)
    return ComponentStatus(NAME, True, pid, pg.port, _url(settings))


def stop(settings: Settings, deadline: Deadline) -> bool:
    """SIGINT is PostgreSQL's fast shutdown: roll back open transactions, checkpoint, exit."""
    return processes.stop(files(settings), deadline, sig=signal.SIGINT)


def status(settings: Settings) -> ComponentStatus:
    pid = processes.running_pid(files(settings))
    _, sock = _dirs(settings)
    up = pid is not None and _isready(sock, settings.postgres.port)
    return ComponentStatus(NAME, up, pid, settings.postgres.port, _url(settings))


def _url(settings: Settings) -> str:
    pg = settings.postgres
    return f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.database}"


def _dirs(settings: Settings) -> tuple[Path, Path]:
    root = settings.local.run_dir / NAME
    return root / "data", root / "socket"


def _prepare_dirs(settings: Settings, os_user: str) -> None:
    try:
        account = pwd.getpwnam(os_user)
    except KeyError as err:
        raise MissingDependencyError(
            f"OS user {os_user!r} does not exist: apt-get install postgresql creates it"
        ) from err
    data, sock = _dirs(settings)
    for directory in (data.parent, data, sock):
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, account.pw_uid, account.pw_gid)
    data.chmod(0o700)
    _allow_traversal(data.parent)


def _allow_traversal(path: Path) -> None:
    """The server runs as another user: every folder above its data dir must be enterable."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _initdb(data: Path, os_user: str, svc: ServiceFiles) -> None:
    result = subprocess.run(
        [
            str(bin_dir() / "initdb"),
            "-D", str(data),
            "--username=postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ],
        user=os_user,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise ServiceStartError(f"initdb into {data} failed:\n{result.stdout}{result.stderr}")
    with svc.logfile.open("a") as log:
        log.write(result.stdout)


def _isready(sock: Path, port: int) -> bool:
    result = subprocess.run(
        [str(bin_dir() / "pg_isready"), "-q", "-h", str(sock), "-p", str(port)], check=False
    )
    return result.returncode == 0


_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _ensure_role_and_database(settings: Settings, sock: Path) -> None:
    pg = settings.postgres
    for value in (pg.user, pg.database):
        if not _IDENTIFIER.match(value):
            raise ServiceStartError(f"{value!r} is not a plain lower-case SQL identifier")
    # Identifiers were checked above; the password travels as a psql variable, quoted by psql.
    script = f"""
\\set ON_ERROR_STOP on
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{pg.user}') AS need_role \\gset
\\if :need_role
CREATE ROLE {pg.user} LOGIN CREATEDB;
\\endif
ALTER ROLE {pg.user} PASSWORD :'password';
SELECT NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{pg.database}') AS need_db \\gset
\\if :need_db
CREATE DATABASE {pg.database} OWNER {pg.user};
\\endif
"""  # noqa: S608
    result = subprocess.run(
        [
            str(bin_dir() / "psql"),
            "-X", "-q",
            "-h", str(sock),
            "-p", str(pg.port),
            "-U", "postgres",
            "-d", "postgres",
            "-v", f"password={pg.password.get_secret_value()}",
        ],
        input=script,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise ServiceStartError(f"creating role/database failed: {result.stderr.strip()}")
