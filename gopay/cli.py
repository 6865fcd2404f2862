"""The `gopay` command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from gopay.settings import Settings

cli = typer.Typer(help="GoPay: mobile wallet and payments on an event-sourced ledger.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
staff_cli = typer.Typer(help="Staff accounts.", no_args_is_help=True)
projections_cli = typer.Typer(help="Read models.", no_args_is_help=True)
keys_cli = typer.Typer(help="Master keys for data at rest.", no_args_is_help=True)
cli.add_typer(staff_cli, name="staff")
cli.add_typer(projections_cli, name="projections")
cli.add_typer(keys_cli, name="keys")
audit_cli = typer.Typer(help="The tamper-evident event log, for auditors.", no_args_is_help=True)
cli.add_typer(audit_cli, name="audit")
ha_cli = typer.Typer(help="A PostgreSQL cluster with automatic failover on this machine "
                          "(etcd and three Patroni nodes), for tests and demos.",
                     no_args_is_help=True)
cli.add_typer(ha_cli, name="ha-cluster")

Host = Annotated[str, typer.Option(help="Address to listen on.")]
Port = Annotated[int, typer.Option(help="Port to listen on.")]
ClusterDir = Annotated[Path, typer.Option("--dir", help="Where the cluster keeps its data and logs.")]


@contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The configured database, or the embedded one under var/ (started here, stopped after)."""
    if settings.database_url:
        yield settings.database_url
        return
    # uvicorn re-raises SIGTERM after its graceful shutdown; the default action would end the
    # process before the `finally` below stops PostgreSQL. Exit normally instead.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the wheel warns about XDG_RUNTIME_DIR on import
        from gopay.embedded_postgres import EmbeddedPostgres
    server = EmbeddedPostgres(settings.embedded_data_dir, wal_archive=settings.wal_archive).start()
    os.environ["GOPAY_DATABASE_URL"] = server.url  # for server worker processes
    try:
        yield server.url
    finally:
        server.stop()


def _serve(settings: Settings, database_url: str, host: str, port: int, workers: int) -> None:
    from gopay.system import prepare_database

    prepare_database(settings, database_url)
    _ = settings.signing_key  # both created once here, before worker processes read them
    settings.key_ring()
    os.environ["GOPAY_DATABASE_URL"] = database_url
    # With a certificate, HTTPS only: there is no plain listener.
    tls = bool(settings.tls_cert and settings.tls_key)
    uvicorn.run("gopay.api.app:create_app", factory=True, host=host, port=port,
                workers=workers if workers > 1 else None, log_level="warning",
                timeout_graceful_shutdown=10,
                ssl_certfile=str(settings.tls_cert) if tls else None,
                ssl_keyfile=str(settings.tls_key) if tls else None)


@cli.command()
def up(host: Host = "127.0.0.1", port: Port = 8000,
       psp_port: Annotated[int, typer.Option(help="Port of the bundled PSP simulator.")] = 8001,
       ) -> None:
    """Run everything on this machine: the API, a worker for the projections and scheduled
    jobs (the API stands by to take them over), and the PSP simulator, on the embedded store."""
    from gopay.projections.runner import projections_led_elsewhere
    from gopay.system import prepare_database

    settings = Settings()
    with database(settings) as database_url, ExitStack() as companions:
        prepare_database(settings, database_url)
        _ = settings.signing_key, settings.psp_key, settings.psp_signing_secret  # made once, here
        settings.key_ring()
        if not settings.psp_url:  # no PSP named: the bundled simulator, beside the API
            os.environ.setdefault("GOPAY_PSP_WEBHOOK_URL", f"http://{host}:{port}/v1/psp/webhooks")
            os.environ["GOPAY_PSP_URL"] = f"http://127.0.0.1:{psp_port}"
            settings = Settings()
            companions.enter_context(_companion("psp-sim", "--host", "127.0.0.1",
                                                "--port", str(psp_port)))
        # The worker starts first, so that it leads the projections and the API stands by.
        companions.enter_context(_companion("worker"))
        projections_led_elsewhere(database_url, within=60)
        typer.echo(f"GoPay API docs:   http://{host}:{port}/docs")
        typer.echo(f"Admin dashboard:  http://{host}:{port}/admin")
        typer.echo(f"Health:           http://{host}:{port}/health/ready")
        typer.echo(f"Metrics:          http://{host}:{port}/metrics")
        typer.echo(f"PSP:              {settings.psp_base_url}")
        _serve(settings, database_url, host, port, workers=1)


@contextmanager
def _companion(*args: str) -> Iterator[subprocess.Popen[bytes]]:
    """Another `gopay` process beside this one, for as long as this one runs."""
    process = subprocess.Popen([sys.executable, "-m", "gopay", *args],  # noqa: S603 - this program
                               env=os.environ.copy())
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@cli.command()
def serve(host: Host = "127.0.0.1", port: Port = 8000,
          workers: Annotated[int, typer.Option(min=1, max=64, help="API processes.")] = 1,
          tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate: serve HTTPS only.")] = None,
          tls_key: Annotated[Path | None, typer.Option(help="PEM private key of the certificate.")] = None,
          ) -> None:
    """Run the API alone (it keeps the read models current unless a worker already does)."""
    settings = Settings()
    if (tls_cert is None) != (tls_key is None):
        raise typer.BadParameter("--tls-cert and --tls-key go together")
    if tls_cert and tls_key:
        settings = settings.model_copy(update={"tls_cert": tls_cert, "tls_key": tls_key})
    with database(settings) as database_url:
        _serve(settings, database_url, host, port, workers)


@cli.command()
def worker() -> None:
    """Run the projections and scheduled jobs alone, for scale, until interrupted."""
    from gopay.scheduler import start_jobs
    from gopay.system import System, prepare_database, settle_memory

    settings = Settings()
    with database(settings) as database_url:
        prepare_database(settings, database_url)
        system = System.connect(settings, database_url)
        system.read_side.start()
        jobs = start_jobs(system)
        if settings.worker_metrics_port:  # the jobs' metrics (integrity drift) for Prometheus
            from prometheus_client import start_http_server

            start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
        settle_memory()
        stopping = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stopping.set())
        typer.echo("GoPay worker: projections running, and scheduled jobs")
        stopping.wait()
        jobs.shutdown(wait=True)
        system.close()


@cli.command("psp-sim")
def psp_sim(host: Host = "127.0.0.1", port: Port = 8001,
            database: Annotated[Path | None, typer.Option(
                help="Its SQLite file (default: GOPAY_PSP_SIM_DATABASE, else var/psp-sim.sqlite3).")] = None,
            faults: Annotated[str | None, typer.Option(
                help='Faults to start with, as POST /sim/faults takes them: {"timeout": 0.1}.')] = None,
            seed: Annotated[int | None, typer.Option(help="Seed of its dice, for a repeatable run.")] = None,
            ) -> None:
    """Run the PSP simulator: charges, payouts, refunds, signed webhooks to GOPAY_PSP_WEBHOOK_URL."""
    from pydantic import ValidationError

    from gopay.psp.simulator.app import serve
    from gopay.psp.simulator.config import SimulatorConfig
    from gopay.psp.simulator.faults import Faults

    try:
        start_faults = Faults.model_validate_json(faults) if faults else None
    except ValidationError as error:
        raise typer.BadParameter(str(error), param_hint="--faults") from None
    config = SimulatorConfig.from_settings(Settings(), database=database, faults=start_faults, seed=seed)
    typer.echo(f"GoPay PSP simulator: http://{host}:{port} (webhooks to {config.webhook_url})")
    serve(config, host, port)


@cli.command()
def backup(directory: Annotated[Path, typer.Argument(help="Folder to create for the backup.")],
           verify: Annotated[bool, typer.Option(
               "--verify", help="Only check the backup already in DIRECTORY.")] = False) -> None:
    """Take a verified base backup of the running store, with the log it needs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the wheel warns about XDG_RUNTIME_DIR on import
        from gopay.operations.backup import BackupError, take_backup, verify_backup

    try:
        if verify:
            taken = verify_backup(directory)
        else:
            with database(Settings()) as database_url:
                taken = take_backup(database_url, directory)
    except BackupError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"backup {taken.path}: {taken.size:,} bytes of data, log {taken.start_lsn} to "
               f"{taken.end_lsn} on timeline {taken.timeline}, verified")


@cli.command()
def restore(backup: Annotated[Path, typer.Argument(help="A folder made by `gopay backup`.")],
            data: Annotated[Path | None, typer.Option(
                help="PostgreSQL data folder to create (default: the embedded store's, under var/).")] = None,
            target_time: Annotated[str | None, typer.Option(
                help="RFC 3339 moment to recover to, needing GOPAY_WAL_ARCHIVE "
                     "(default: the end of the archive).")] = None) -> None:
    """Rebuild the store from a backup and the archived log, to any moment the archive covers."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the wheel warns about XDG_RUNTIME_DIR on import
        from gopay.operations.backup import BackupError
        from gopay.operations.backup import restore as restore_store

    moment = None
    if target_time is not None:
        try:
            moment = datetime.fromisoformat(target_time)
        except ValueError:
            raise typer.BadParameter("not an RFC 3339 time", param_hint="--target-time") from None
        if moment.tzinfo is None:
            raise typer.BadParameter("give the time zone (Z or +hh:mm)", param_hint="--target-time")
    settings = Settings()
    try:
        restored = restore_store(backup, data or settings.embedded_data_dir,
                                 wal_archive=settings.wal_archive, target_time=moment)
    except BackupError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"restored {backup} into {restored.data_dir} "
               f"({restored.recovery_end or 'as the backup ended'}); ready to start")


@staff_cli.command("create")
def staff_create(email: Annotated[str, typer.Option()], password: Annotated[str, typer.Option()],
                 role: Annotated[str, typer.Option(help="admin, sub_admin, auditor, finance or support")],
                 full_name: Annotated[str, typer.Option()] = "GoPay staff") -> None:
    """Create a staff account that signs in like anyone else and acts with its role."""
    from gopay.aggregates.errors import DomainError
    from gopay.aggregates.user import STAFF_ROLES
    from gopay.commands.registration import Register
    from gopay.security.passwords import MIN_LENGTH
    from gopay.system import System, prepare_database

    if role not in STAFF_ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(STAFF_ROLES)}")
    if len(password) < MIN_LENGTH:
        raise typer.BadParameter(f"passwords have at least {MIN_LENGTH} characters")
    settings = Settings()
    with database(settings) as database_url:
        prepare_database(settings, database_url)
        system = System.connect(settings, database_url)
        try:
            outcome = system.commands.run(Register(
                email=email, password=password, kind="staff", full_name=full_name, role=role))
        except DomainError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1) from None
        finally:
            system.close()
        typer.echo(f"created {role} {outcome.value.email} ({outcome.value.id})")


@projections_cli.command("rebuild")
def projections_rebuild() -> None:
    """Empty every read model and build it again from event zero (stop the servers first)."""
    from gopay.progress import progress_bar
    from gopay.system import System, prepare_database

    settings = Settings()
    with database(settings) as database_url:
        prepare_database(settings, database_url)
        system = System.connect(settings, database_url)
        try:
            with progress_bar("rebuilding read models") as progress:
                system.read_side.rebuild(progress)
            typer.echo(f"rebuilt up to position {system.read_side.position()}")
        finally:
            system.close()


@keys_cli.command("generate")
def keys_generate() -> None:
    """Print a fresh `id:base64key` entry, to put first in GOPAY_ENCRYPTION_KEYS."""
    from gopay.security.keyring import KeyRing

    typer.echo(KeyRing.new_entry())


@keys_cli.command("rotate")
def keys_rotate(new_key: Annotated[bool, typer.Option(
        help="First add a fresh key to the front of the ring kept under var/.")] = False) -> None:
    """Re-wrap every data key under the first master key; then older keys can be deleted."""
    from gopay.security.keyring import KeyRing
    from gopay.system import System, prepare_database

    settings = Settings()
    if new_key:
        if settings.encryption_keys:
            raise typer.BadParameter("the ring comes from GOPAY_ENCRYPTION_KEYS: put the new key "
                                     "first there (`gopay keys generate` makes one)")
        ring_file = settings.var_dir / "encryption_keys"
        ring_file.write_text(f"{KeyRing.new_entry()},{settings.key_ring_text()}")
    ring = settings.key_ring()
    with database(settings) as database_url:
        prepare_database(settings, database_url)
        system = System.connect(settings, database_url)
        try:
            rewrapped = system.app.data_keys.rotate()
            in_use = system.app.data_keys.master_keys_in_use()
        finally:
            system.close()
    typer.echo(f"re-wrapped {rewrapped} data keys under {ring.current_id}")
    unused = [key_id for key_id in ring.key_ids if key_id not in in_use]
    typer.echo(f"master keys no longer needed: {', '.join(unused) or 'none'}")


@ha_cli.command("start")
def ha_cluster_start(directory: ClusterDir = Path("var/ha-cluster")) -> None:
    """Start etcd and three Patroni nodes on loopback ports, in the background; print the URL."""
    from gopay.operations.ha_cluster import LocalCluster

    cluster = LocalCluster.at(directory)
    if cluster.is_running():
        typer.echo(f"already running in {cluster.directory}")
    else:
        cluster.start()
    typer.echo(f"GOPAY_DATABASE_URL={cluster.url()}")


@ha_cli.command("status")
def ha_cluster_status(directory: ClusterDir = Path("var/ha-cluster")) -> None:
    """Each member's role (leader, quorum_standby) and state, as Patroni sees them."""
    from gopay.operations.ha_cluster import LocalCluster

    cluster = LocalCluster.load(directory)
    for member in cluster.members():
        typer.echo(f"{member['name']}  {member['host']}:{member['port']}  {member['role']:15} "
                   f"{member['state']:10} lag {member.get('lag', 0)}")
    typer.echo(f"GOPAY_DATABASE_URL={cluster.url()}")


@ha_cli.command("crash-primary")
def ha_cluster_crash_primary(directory: ClusterDir = Path("var/ha-cluster")) -> None:
    """kill -9 the primary's PostgreSQL, to watch Patroni promote a synchronous standby."""
    from gopay.operations.ha_cluster import LocalCluster

    typer.echo(f"killed the PostgreSQL of {LocalCluster.load(directory).crash_primary().name}")


@ha_cli.command("stop")
def ha_cluster_stop(directory: ClusterDir = Path("var/ha-cluster")) -> None:
    """Stop the nodes and etcd (the data stays for the next `start`)."""
    from gopay.operations.ha_cluster import LocalCluster

    LocalCluster.load(directory).stop()
    typer.echo("stopped")


@cli.command()
def reconcile(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                                   help="The PSP's settlement file (CSV).")],
              day: Annotated[str | None, typer.Option(
                  "--date", help="A UTC day (YYYY-MM-DD) the file is for, beyond those its "
                                 "lines fall on.")] = None) -> None:
    """Reconcile a settlement file against the ledger and print the run's summary (the same
    file again is the same run); a progress bar shows on a terminal."""
    import gc
    import json
    from datetime import date

    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from gopay.aggregates.errors import DomainError
    from gopay.reconcile.runs import reconcile as reconcile_file
    from gopay.system import System, prepare_database

    try:
        days = [date.fromisoformat(day)] if day else []
    except ValueError:
        raise typer.BadParameter("not a YYYY-MM-DD date", param_hint="--date") from None
    settings = Settings()
    size = file.stat().st_size
    # On stderr, so that stdout holds the summary alone even when a person pipes it on.
    bar = Progress(TextColumn("{task.description:9}"), BarColumn(), DownloadColumn(),
                   TimeRemainingColumn(), console=Console(stderr=True), transient=True,
                   disable=not sys.stderr.isatty())
    tasks = {phase: bar.add_task(phase, total=size) for phase in ("reading", "matching")}
    with database(settings) as database_url:
        prepare_database(settings, database_url)
        system = System.connect(settings, database_url)
        system.read_side.start()  # leads the projections unless another process does
        # What start-up made lives as long as this process: the garbage collector need not
        # walk it again on every full collection while a million lines go by.
        gc.freeze()
        try:
            with bar, file.open("rb") as source:
                outcome = reconcile_file(
                    system, source, file_name=file.name, origin="cli", started_by=None,
                    days=days, progress=lambda phase, read: bar.update(tasks[phase], completed=read))
            run = system.read_side.reconciliation.run(outcome.run_id)
        except DomainError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1) from None
        finally:
            system.close()
    assert run is not None, "a finished run is on the read side"
    typer.echo(json.dumps({"id": str(run["id"]), "file_sha256": run["file_sha256"],
                           "period": run["period"], "lines": run["lines"],
                           "summary": run["summary"], "repeated": outcome.repeated}))


@audit_cli.command("verify")
def audit_verify() -> None:
    """Recompute the event log's chain, check its signed checkpoints, that the ledger sums to
    zero and that the read models say what the events say; exit 1 if anything is wrong."""
    import json

    from gopay.progress import progress_bar
    from gopay.projections.runner import projections_led_elsewhere
    from gopay.reconcile.audit import verify
    from gopay.system import System, prepare_database

    settings = Settings()
    with database(settings) as database_url:
        prepare_database(settings, database_url)
        system = System.connect(settings, database_url)
        try:
            if projections_led_elsewhere(database_url, within=1):
                system.catch_up_reads()  # the leader brings the read side up to now
            else:
                system.read_side.catch_up()
            with progress_bar("verifying") as progress:
                verdict = verify(system.app, system.signer, system.read_side, progress)
        finally:
            system.close()
    typer.echo(json.dumps({"events_checked": verdict.events_checked, "chain_ok": verdict.chain_ok,
                           "first_bad_position": verdict.first_bad_position,
                           "ledger_balanced": verdict.ledger_balanced,
                           "projections_match": verdict.projections_match}))
    for problem in verdict.problems:
        typer.echo(f"problem: {problem}", err=True)
    raise typer.Exit(0 if verdict.ok else 1)


@audit_cli.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the event log's chain as it is now (the scheduler also does so every minute)."""
    from gopay.reconcile.audit import checkpoint
    from gopay.system import System, prepare_database

    settings = Settings()
    with database(settings) as database_url:
        prepare_database(settings, database_url)
        system = System.connect(settings, database_url)
        try:
            position = checkpoint(system.app, system.signer)
        finally:
            system.close()
    typer.echo(f"signed the chain at position {position}" if position else "the log is empty")


@cli.command("export")
def export(path: Annotated[Path, typer.Argument(help="The file to write (a tar of JSON lines).")],
           ) -> None:
    """Write the whole history (events, chain, signed checkpoints, wrapped data keys) as one
    file with a manifest of checksums and the chain's head, after signing the head."""
    from gopay.progress import progress_bar
    from gopay.reconcile.export import export_history
    from gopay.system import System, prepare_database

    settings = Settings()
    with database(settings) as database_url:
        prepare_database(settings, database_url)
        system = System.connect(settings, database_url)
        try:
            with progress_bar("exporting") as progress:
                manifest = export_history(system.app, path, progress, signer=system.signer)
        finally:
            system.close()
    head = manifest["chain_head"]
    typer.echo(f"exported {manifest['events']} events to {path}"
               + (f", chain head {head['hash']} at position {head['position']}" if head else ""))


@cli.command("import")
def import_(path: Annotated[Path, typer.Argument(help="A file written by `gopay export`.")]) -> None:
    """Rebuild an empty store from a history file: refused unless every checksum, the chain,
    its signed checkpoints and the books hold (needs the same audit and master keys)."""
    from gopay.progress import progress_bar
    from gopay.reconcile.export import HistoryRefused, import_history
    from gopay.system import System, prepare_database

    settings = Settings()
    with database(settings) as database_url:
        prepare_database(settings, database_url)
        system = System.connect(settings, database_url)
        try:
            with progress_bar("importing") as progress:
                manifest = import_history(system.app, system.signer, system.read_side, path,
                                          progress)
        except HistoryRefused as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1) from None
        finally:
            system.close()
    head = manifest["chain_head"]
    typer.echo(f"imported {manifest['events']} events from {path}"
               + (f", chain head {head['hash']} at position {head['position']}" if head else ""))


def main() -> None:
    cli()
