"""``learnflow``: run the local platform and administer its schema and topics."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import TaskID
from rich.table import Table

from learnflow.exceptions import LearnFlowError
from learnflow.settings import Settings

if TYPE_CHECKING:
    from learnflow.param_file import ParameterFile

app = typer.Typer(
    name="learnflow",
    help="LearnFlow: learning analytics on Kafka, Redis, PostgreSQL and Ray.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log each step in detail.")]


def _setup(verbose: bool) -> Settings:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )
    return Settings()


@app.command()
def up(
    verbose: Verbose = False,
    app_: Annotated[
        bool, typer.Option("--app/--no-app", help="Also deploy the Serve application.")
    ] = True,
    cluster: Annotated[
        bool,
        typer.Option(
            "--cluster",
            help="Three Kafka nodes (replication 3, min in-sync 2), two Ray nodes, shards and "
            "API replicas spread over both; its own files under .run/cluster. Stays the "
            "profile of every command until `learnflow down`.",
        ),
    ] = False,
    dev_tokens: Annotated[
        bool | None,
        typer.Option(
            "--dev-tokens/--no-dev-tokens",
            help="Let POST /api/v1/dev/token mint a token for any student. Default: on with "
            "LEARNFLOW_ENVIRONMENT=dev unless LEARNFLOW_AUTH__DEV_TOKENS says otherwise; "
            "refused in any other environment.",
        ),
    ] = None,
) -> None:
    """Start Redis, PostgreSQL, Kafka, Ray and the Serve app (what already runs is kept)."""
    from ops.platform import profile, ray, stack

    if cluster:
        profile.use_cluster([row.name for row in stack.status(Settings()) if row.running])

    # Through the environment, so that the settings' validation (dev only) applies to it too.
    if dev_tokens is not None:
        os.environ["LEARNFLOW_AUTH__DEV_TOKENS"] = str(dev_tokens).lower()
    elif os.environ.get("LEARNFLOW_ENVIRONMENT", "dev") == "dev":
        os.environ.setdefault("LEARNFLOW_AUTH__DEV_TOKENS", "true")
    settings = _setup(verbose)
    began = time.monotonic()
    with console.status("starting") as spinner:

        def report(step: str) -> None:
            spinner.update(f"[bold]starting {step}[/] ({time.monotonic() - began:.0f} s)")
            console.log(f"{step} …")

        stack.up(settings, report, with_app=app_)
    console.print(
        f"[green]LearnFlow is up[/] in {time.monotonic() - began:.1f} s "
        f"({profile.describe(settings)})"
    )
    table = Table(show_header=False, box=None)
    table.add_row("App", settings.serve.url)
    table.add_row("Readiness", f"{settings.serve.url}/readyz")
    table.add_row("OpenAPI", f"{settings.serve.url}/openapi.json")
    table.add_row("Ray dashboard", settings.ray.dashboard_url)
    table.add_row("Ray token", f"{ray.token_path(settings)} (paste it at the dashboard's prompt)")
    console.print(table)


@app.command()
def down(verbose: Verbose = False) -> None:
    """Stop everything ``learnflow up`` started, by pid."""
    from ops.platform import profile, stack

    settings = _setup(verbose)
    with console.status("stopping") as spinner:
        results = stack.down(settings, lambda name: spinner.update(f"stopping {name}"))
    for name, was_running in results:
        console.print(f"{name:10} {'stopped' if was_running else 'was not running'}")
    profile.clear()


@app.command()
def status(verbose: Verbose = False) -> None:
    """Show each component (running, pid, port, URL); exit 1 if any is down."""
    from ops.platform import stack

    settings = _setup(verbose)
    rows = stack.status(settings)
    table = Table("component", "state", "pid", "port", "url", "detail")
    for row in rows:
        table.add_row(
            row.name,
            "[green]running[/]" if row.running else "[red]down[/]",
            str(row.pid or "-"),
            str(row.port or "-"),
            row.url or "-",
            row.detail,
        )
    console.print(table)
    running = {row.name: row.running for row in rows}
    if running["kafka"] and running["redis"]:
        from ops.platform.partitions import partition_status

        shards = Table("partition", "end offset", "committed", "lag", "resident students",
                       "applied (since start)", title=settings.kafka.events_topic)  # fmt: skip
        for part in partition_status(settings):
            shards.add_row(
                str(part.partition),
                f"{part.end_offset:,}",
                "-" if part.committed is None else f"{part.committed:,}",
                "-" if part.lag is None else f"{part.lag:,}",
                "-" if part.resident_students is None else f"{part.resident_students:,}",
                "-" if part.applied is None else f"{part.applied:,}",
            )
        console.print(shards)
    if not all(row.running for row in rows):
        raise typer.Exit(1)


@app.command()
def migrate(verbose: Verbose = False) -> None:
    """Apply pending PostgreSQL migrations (each once)."""
    from learnflow import migrations

    settings = _setup(verbose)
    applied = asyncio.run(migrations.apply(settings.postgres.dsn()))
    if not applied:
        console.print("schema is up to date")
    for migration in applied:
        console.print(f"applied {migration.version:04d}_{migration.name}")


@app.command()
def topics(verbose: Verbose = False) -> None:
    """Create the LearnFlow topics if missing; fail on a topic with the wrong layout."""
    from ingest import topics as kafka_topics
    from learnflow.deadline import Deadline

    settings = _setup(verbose)
    states = kafka_topics.ensure_topics(
        kafka_topics.admin_client(settings.kafka),
        kafka_topics.learnflow_topics(settings.kafka),
        Deadline.after(30.0),
    )
    for state in states:
        verb = "created" if state.created else "exists "
        console.print(f"{verb} {state.name} ({state.partitions} partitions)")


@app.command()
def fit(
    out: Annotated[Path, typer.Option("--out", help="Parameter file to write (JSON).")],
    csv_file: Annotated[
        Path | None,
        typer.Option("--csv", help="pyBKT-style CSV: order_id, user_id, skill_name, correct."),
    ] = None,
    events_file: Annotated[
        Path | None,
        typer.Option("--events", help="JSON lines of attempt.graded events."),
    ] = None,
    forgets: Annotated[
        str, typer.Option(help="Fit p_forget: never, always, or auto (held-out likelihood).")
    ] = "auto",
    restarts: Annotated[int, typer.Option(min=1, help="Random restarts per component.")] = 6,
    seed: Annotated[int, typer.Option(help="Seed of the random restarts.")] = 0,
    version: Annotated[
        int, typer.Option(min=0, help="Version number written to the file (without --store).")
    ] = 1,
    store: Annotated[
        bool,
        typer.Option("--store", help="Also store the fit in PostgreSQL as the next model version."),
    ] = False,
    from_history: Annotated[
        bool,
        typer.Option(
            "--from-history",
            help="Fit the attempt history in PostgreSQL as a Ray job on the running cluster "
            "and store it as the next model version.",
        ),
    ] = False,
    since: Annotated[
        datetime | None,
        typer.Option(help="With --from-history: attempts submitted from this date on (UTC)."),
    ] = None,
    components: Annotated[
        str | None,
        typer.Option(help="With --from-history: comma-separated components (default: all)."),
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Fit BKT parameters per component by EM; write them as a file, and with --store as the
    next model version (publish it with ``learnflow model publish``)."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeElapsedColumn

    from learnflow import fitting, param_file, sequences

    settings = _setup(verbose)
    if forgets not in ("never", "always", "auto"):
        raise typer.BadParameter(f"--forgets must be never, always or auto, not {forgets!r}")
    if from_history:
        if csv_file is not None or events_file is not None:
            raise typer.BadParameter("--from-history reads the history: no --csv or --events")
        _fit_history(settings, out, since, components, forgets, restarts, seed)
        return
    if since is not None or components is not None:
        raise typer.BadParameter("--since and --components go with --from-history")
    if (csv_file is None) == (events_file is None):
        raise typer.BadParameter("give exactly one of --csv, --events or --from-history")
    began = time.monotonic()
    if csv_file is not None:
        seqs = sequences.read_csv(csv_file)
    elif events_file is not None:
        seqs = sequences.read_events_file(events_file)
    console.print(
        f"read {len(seqs.obs):,} attempts, {len(set(seqs.students)):,} students, "
        f"{len(seqs.components)} components in {time.monotonic() - began:.1f} s"
    )
    config = fitting.FitConfig(restarts=restarts, seed=seed, forgets=forgets)  # type: ignore[arg-type]
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done)

        fits = fitting.fit(seqs, config, progress)
    document = param_file.build(fits, version, config.default)
    if store:
        source = f"fit of {csv_file or events_file}"
        version = asyncio.run(_store_model(settings, document, source))
        document = document.model_copy(update={"version": version})
    param_file.write(out, document)
    table = Table(
        "component", "students", "attempts", "p_init", "p_learn", "p_guess", "p_slip",
        "p_forget", "log-lik", "fit", title=f"BKT parameters (version {version})",
    )  # fmt: skip
    for item in fits:
        p = item.params
        table.add_row(
            item.component,
            f"{item.n_students:,}",
            f"{item.n_attempts:,}",
            *(f"{v:.3f}" for v in p.as_tuple()),
            "-" if item.log_likelihood is None else f"{item.log_likelihood:,.1f}",
            "[yellow]fallback[/]" if item.fallback else "fitted",
        )
    console.print(table)
    for item in fits:
        if item.note:
            console.print(f"  {item.component}: {item.note}")
    console.print(f"wrote {out} in {time.monotonic() - began:.1f} s")


def _fit_history(
    settings: Settings,
    out: Path,
    since: datetime | None,
    components: str | None,
    forgets: str,
    restarts: int,
    seed: int,
) -> None:
    from actors import model_store, postgres_store
    from jobs import submit
    from learnflow import param_file
    from ops.platform import ray as local_ray

    local_ray.use_cluster_env(settings)
    args = ["--forgets", forgets, "--restarts", str(restarts), "--seed", str(seed)]
    if since is not None:
        moment = since if since.tzinfo else since.replace(tzinfo=UTC)
        args += ["--since", moment.isoformat()]
    if components:
        args += ["--components", components]
    submission = submit.submission_id("fit")
    source = f"history fit, Ray job {submission}"
    submit.submit(settings, submission, "jobs.fit_history", [*args, "--source", source])
    console.print(
        f"submitted Ray job [bold]{submission}[/] (logs: {settings.ray.dashboard_url}"
        f"/#/jobs/{submission})"
    )
    submit.follow(settings, submission, lambda text: console.print(text, markup=False))

    async def document() -> param_file.ParameterFile:
        async with postgres_store.session(settings.postgres) as pool:
            version = await pool.fetchval(
                "SELECT version FROM model_versions WHERE source = $1", source
            )
            if version is None:
                raise model_store.UnknownModelVersionError(
                    f"job {submission} succeeded but stored no model version"
                )
            return await model_store.document(pool, version)

    fitted = asyncio.run(document())
    param_file.write(out, fitted)
    console.print(
        f"wrote {out} (model version {fitted.version}); "
        f"publish it with: learnflow model publish {fitted.version}"
    )


@app.command()
def evaluate(
    version: Annotated[
        int | None, typer.Option(help="The version to score (default: the newest stored).")
    ] = None,
    against: Annotated[
        int | None, typer.Option(help="The version to compare with (default: the live one).")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Attempts submitted from this date on (UTC).")
    ] = None,
    components: Annotated[
        str | None, typer.Option(help="Comma-separated components (default: all).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Report directory (default: .run/reports/model-N).")
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Score a model version on held-out students of the history against the live version
    (AUC, log-loss, RMSE, per component and overall) and write an HTML report with pictures."""
    from actors import model_store, postgres_store
    from jobs import history
    from learnflow import evaluation
    from learnflow.bkt import ModelParameters
    from learnflow.sequences import Sequences

    settings = _setup(verbose)
    wanted = [c for c in components.split(",") if c] if components else None
    moment = since.replace(tzinfo=UTC) if since and since.tzinfo is None else since

    async def load() -> tuple[Sequences, ModelParameters, ModelParameters]:
        async with postgres_store.session(settings.postgres) as pool:
            stored = await model_store.versions(pool)
            chosen = version if version is not None else max(v.version for v in stored)
            baseline = against if against is not None else (await model_store.published(pool))
            candidate = await model_store.load(pool, chosen)
            live = await model_store.load(pool, baseline or 0)
        async with postgres_store.connection(settings.postgres) as conn:
            names = wanted or [
                size.component for size in await history.component_sizes(conn, moment, None)
            ]
            taken = await history.read(conn, moment, names)
        return taken.sequences, candidate, live

    seqs, candidate, live = asyncio.run(load())
    _, test = seqs.split_by_student(evaluation.HELD_OUT)
    if not len(test.obs):
        raise LearnFlowError("no held-out attempts in the history to score: nothing to evaluate")
    result = evaluation.evaluate(test, candidate, live)
    table = Table(
        "component", "answers", f"AUC v{candidate.version}", f"log-loss v{candidate.version}",
        f"AUC v{live.version}", f"log-loss v{live.version}",
        title=f"Held-out students: version {candidate.version} against {live.version}",
    )  # fmt: skip
    rows = [("all", result.candidate.overall, result.baseline.overall)] + [
        (name, result.candidate.components[name], result.baseline.components[name])
        for name in test.components
        if name in result.candidate.components
    ]
    for name, new, old in rows:
        table.add_row(
            name, f"{new.n:,}", f"{new.auc:.4f}", f"{new.log_loss:.4f}", f"{old.auc:.4f}",
            f"{old.log_loss:.4f}",
        )  # fmt: skip
    console.print(table)
    directory = out or settings.local.run_dir / "reports" / f"model-{candidate.version}"
    page = evaluation.write_report(result, directory)
    console.print(f"report: {page}")


model_app = typer.Typer(
    help="Versions of the BKT parameters and the one the shards use.", no_args_is_help=True
)
app.add_typer(model_app, name="model")


async def _store_model(settings: Settings, document: ParameterFile, source: str) -> int:
    from actors import model_store, postgres_store

    async with postgres_store.session(settings.postgres) as pool:
        return await model_store.store(pool, document, source)


@model_app.command("import")
def model_import(
    path: Annotated[Path, typer.Argument(help="A parameter file written by learnflow fit.")],
    verbose: Verbose = False,
) -> None:
    """Store a parameter file as the next model version (not published yet)."""
    from learnflow import param_file

    settings = _setup(verbose)
    version = asyncio.run(_store_model(settings, param_file.read(path), f"file {path.name}"))
    console.print(f"stored {path} as model version {version}")


@model_app.command("list")
def model_list(verbose: Verbose = False) -> None:
    """Every stored model version, newest first; the published one is marked."""
    from actors import model_store, postgres_store

    settings = _setup(verbose)

    async def run() -> tuple[list[model_store.VersionSummary], int | None]:
        async with postgres_store.session(settings.postgres) as pool:
            return await model_store.versions(pool), await model_store.published(pool)

    summaries, live = asyncio.run(run())
    table = Table("version", "fitted", "source", "components", "fallbacks", "published")
    for item in summaries:
        mark = "[green]live[/]" if item.version == (live or 0) else ""
        when = f"{item.published_at:%Y-%m-%d %H:%M:%S}" if item.published_at else "-"
        table.add_row(
            str(item.version),
            f"{item.fitted_at:%Y-%m-%d %H:%M:%S}",
            item.source,
            str(item.components),
            str(item.fallbacks),
            f"{when} {mark}".strip(),
        )
    console.print(table)


@model_app.command("publish")
def model_publish(
    version: Annotated[int, typer.Argument(min=0, help="The version to use from now on.")],
    verbose: Verbose = False,
) -> None:
    """Make every running shard apply events with this version from its next batch on (no
    restart; a restarted shard comes back on it). Rolling back is publishing an older one."""
    from actors import model_store, postgres_store

    settings = _setup(verbose)

    async def run() -> None:
        async with postgres_store.session(settings.postgres) as pool:
            await model_store.publish(pool, version)

    asyncio.run(run())
    console.print(
        f"published model version {version}: shards switch within "
        f"{settings.mastery.model_poll_s:g} s, between two batches"
    )


keys_app = typer.Typer(help="The JWT signing keys (RS256).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("init")
def keys_init(verbose: Verbose = False) -> None:
    """Create the key set with one 2048-bit RSA signing key (keeps an existing one)."""
    from learnflow import keyring

    settings = _setup(verbose)
    ring, created = keyring.init(settings.auth.keys_dir)
    verb = "created" if created else "kept existing"
    console.print(f"{verb} key set at {ring.directory}; signing key {ring.signing}")


@keys_app.command("rotate")
def keys_rotate(verbose: Verbose = False) -> None:
    """Make a new signing key; old public keys stay valid until their last tokens expire."""
    from learnflow import keyring

    settings = _setup(verbose)
    ring = keyring.rotate(settings.auth.keys_dir, settings.auth)
    console.print(f"signing key is now {ring.signing}")
    for info in ring.keys.values():
        if info.kid != ring.signing and info.valid_until is not None:
            until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(info.valid_until))
            console.print(f"  {info.kid} verifies until {until}")


token_app = typer.Typer(help="Mint (--student) or revoke tokens.")
app.add_typer(token_app, name="token")


@token_app.callback(invoke_without_command=True)
def token(
    ctx: typer.Context,
    student: Annotated[
        str | None, typer.Option("--student", help="Mint a token for this student id.")
    ] = None,
    ttl: Annotated[
        int | None, typer.Option("--ttl", help="Lifetime in seconds (at most 86400).")
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Print a signed token for ``--student`` (on stdout, nothing else)."""
    from learnflow import keyring

    if ctx.invoked_subcommand is not None:
        return
    if student is None:
        raise typer.BadParameter("give --student ID (or use `learnflow token revoke JTI`)")
    settings = _setup(verbose)
    minted, claims = keyring.mint(keyring.load(settings.auth.keys_dir), settings.auth, student, ttl)
    print(minted)
    expires = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(claims["exp"]))
    err_console.print(f"jti {claims['jti']}, expires {expires}")


@token_app.command("revoke")
def token_revoke(
    jti: Annotated[str, typer.Argument(help="The token's jti claim.")],
    verbose: Verbose = False,
) -> None:
    """Refuse a token from now on (kept in Redis until it would have expired anyway)."""
    from actors import redis_store
    from serve.limits import revoke

    settings = _setup(verbose)

    async def run() -> None:
        client = redis_store.connect(settings.redis)
        try:
            await revoke(client, jti, settings.auth.max_lifetime_s + settings.auth.leeway_s)
        finally:
            await client.aclose()

    asyncio.run(run())
    console.print(f"revoked {jti}")


kong_app = typer.Typer(help="The Kong gateway configuration.", no_args_is_help=True)
app.add_typer(kong_app, name="kong")


@kong_app.command("render")
def kong_render(
    out: Annotated[Path, typer.Option("--out", help="Where to write kong.yml.")] = Path(
        "kong/kong.yml"
    ),
    verbose: Verbose = False,
) -> None:
    """Write the DB-less Kong config from the current key set."""
    from learnflow import keyring
    from learnflow.kong import render

    settings = _setup(verbose)
    ring = keyring.load(settings.auth.keys_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(settings, ring))
    console.print(f"wrote {out} ({len(ring.public_keys())} public key(s))")


ray_cluster_app = typer.Typer(
    help="The Ray cluster launcher config (ray up) for machines of your own.",
    no_args_is_help=True,
)
app.add_typer(ray_cluster_app, name="ray-cluster")


@ray_cluster_app.command("render")
def ray_cluster_render(
    head: Annotated[
        str, typer.Option("--head", envvar="LEARNFLOW_CLUSTER_HEAD", help="The head's address.")
    ],
    worker: Annotated[
        list[str],
        typer.Option(
            "--worker",
            envvar="LEARNFLOW_CLUSTER_WORKERS",
            help="A worker's address (repeat the option; the variable takes them space-separated).",
        ),
    ],
    ssh_user: Annotated[str, typer.Option("--ssh-user", help="The nodes' SSH user.")] = "learnflow",
    out: Annotated[Path, typer.Option("--out", help="Where to write the config.")] = Path(
        "ray_cluster.yaml"
    ),
    verbose: Verbose = False,
) -> None:
    """Write the launcher config: the head and workers given, ports from the settings, this
    project and the local cluster's token synced to every node."""
    from learnflow import ray_launcher
    from ops.platform import ray as local_ray

    settings = _setup(verbose)
    token = local_ray.token_path(settings)
    if not token.exists():
        raise typer.BadParameter(f"{token} is missing: run `learnflow up` once to make it")
    config = ray_launcher.launcher_config(
        settings, head, worker, ssh_user, Path.cwd(), token.resolve()
    )
    out.write_text(ray_launcher.render(config))
    console.print(f"wrote {out}: head {head}, {len(worker)} worker(s)")


def main() -> None:
    try:
        app()
    except (LearnFlowError, ValidationError) as err:
        err_console.print(f"[red]error:[/] {err}")
        sys.exit(1)
