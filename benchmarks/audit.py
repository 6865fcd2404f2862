"""The auditor's tools on a big store: verify, rebuilding the read models, export and import.

    .venv/bin/python benchmarks/audit.py --events 1000000

Starts a throwaway embedded PostgreSQL and fills it with `--events` events of wallets funded
by adjustments and paying each other (`Wallet` and `PaymentOrder` events as GoPay's mapper
writes them), stored by GoPay's own recorder in batches of `--batch` events (each batch is one block of the
chain, as a group commit makes one). Then it times, and prints in events/s: rebuilding every
read model from event zero (what `gopay projections rebuild` does), `verify` (the chain, its
checkpoint, the books and the read models), `gopay export` and `gopay import` into a second
empty database.

    .venv/bin/python benchmarks/audit.py --events 200000 --wallets 10000 --keep
    .venv/bin/python benchmarks/audit.py --store DIR --steps rebuild,verify

`--keep` leaves the filled store behind (the last line names its folder, DIR above); `--store` times the
steps asked for again on such a store, without filling it, so that code before and after a
change can be compared on the same events. Each step also prints the CPU seconds it took in
this process (Python) and in PostgreSQL (every server process): on a shared machine, wall
time says more about the neighbours than about the code.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from gopay.aggregates.ledger import SystemAccount
from gopay.aggregates.payment_order import PaymentOrder
from gopay.aggregates.wallet import Wallet
from gopay.application import GoPay
from gopay.projections.wallets import Books
from gopay.settings import Settings
from gopay.system import System, prepare_database
from tests.support import SECRET_KEY, UNLIMITED

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from gopay.embedded_postgres import EmbeddedPostgres

CURRENCY = "USD"
WALLET, ORDER = get_topic(Wallet), get_topic(PaymentOrder)
OPENED, CREDITED, DEBITED = (get_topic(Wallet.Opened), get_topic(Wallet.Credited),
                             get_topic(Wallet.Debited))
CREATED, SUCCEEDED = get_topic(PaymentOrder.Created), get_topic(PaymentOrder.Succeeded)


def history(events: int, wallets: int, seed: int) -> Iterator[list[StoredEvent]]:
    """Stored events of `wallets` funded wallets, then transfers between them, until `events`.

    Written as the transcoder writes them (checked by `check_history`), not through the
    aggregates: those make 8,000 events a second, this 300,000.
    """
    dice = random.Random(seed)
    adjustments = str(SystemAccount.ADJUSTMENTS.account_id(CURRENCY))
    admin = uuid.uuid4()
    moment = datetime.now(UTC) - timedelta(days=1)
    step = timedelta(microseconds=50)
    balances: list[int] = []
    versions: list[int] = []
    ids: list[uuid.UUID] = []
    owners: list[uuid.UUID] = []
    made = 0

    def at() -> str:
        nonlocal moment
        moment += step
        return f'{{"timestamp":{{"_type_":"datetime_iso","_data_":"{moment.isoformat()}"}}'

    def event(aggregate_id: uuid.UUID, version: int, topic: str, state: str) -> StoredEvent:
        return StoredEvent(aggregate_id, version, topic, state.encode())

    while made < events:
        order = uuid.uuid4()
        if len(ids) < wallets:
            wallet, owner = uuid.uuid4(), uuid.uuid4()
            amount = dice.randrange(100_000, 1_000_000)
            ids.append(wallet)
            owners.append(owner)
            balances.append(amount)
            versions.append(2)
            batch = [
                event(wallet, 1, OPENED, f'{at()},"originator_topic":"{WALLET}","owner_id":'
                      f'{_uuid(owner)},"currency":"{CURRENCY}"}}'),
                event(order, 1, CREATED, f'{at()},"originator_topic":"{ORDER}","order_type":'
                      f'"adjustment","initiated_by":{_uuid(admin)},"payer_wallet_id":null,'
                      f'"payee_wallet_id":{_uuid(wallet)},"amount":{amount},"currency":'
                      f'"{CURRENCY}","note":"funding","request_fingerprint":"bench"}}'),
                event(wallet, 2, CREDITED, f'{at()},"entry_id":{_uuid(order)},"entry_type":'
                      f'"adjustment","amount":{amount},"currency":"{CURRENCY}","balance_after":'
                      f'{amount},"counterparty":"adjustments","reference":"funding"}}'),
                event(order, 2, SUCCEEDED, f'{at()},"postings":[{_posting(adjustments, -amount)},'
                      f'{_posting(str(wallet), amount)}]}}'),
            ]
        else:
            payer, payee = dice.sample(range(len(ids)), 2)
            if balances[payer] < 2:
                continue
            amount = dice.randrange(1, min(balances[payer], 5_000))
            balances[payer] -= amount
            balances[payee] += amount
            versions[payer] += 1
            versions[payee] += 1
            day = moment.date().isoformat()
            batch = [
                event(order, 1, CREATED, f'{at()},"originator_topic":"{ORDER}","order_type":'
                      f'"transfer","initiated_by":{_uuid(owners[payer])},"payer_wallet_id":'
                      f'{_uuid(ids[payer])},"payee_wallet_id":{_uuid(ids[payee])},"amount":'
                      f'{amount},"currency":"{CURRENCY}","note":"","request_fingerprint":"bench"}}'),
                event(ids[payer], versions[payer], DEBITED, f'{at()},"entry_id":{_uuid(order)},'
                      f'"entry_type":"transfer","amount":{amount},"currency":"{CURRENCY}",'
                      f'"balance_after":{balances[payer]},"counterparty":"{owners[payee]}",'
                      f'"reference":"","day":"{day}","made_at":null,"device":null,"class_version":3}}'),
                event(ids[payee], versions[payee], CREDITED, f'{at()},"entry_id":{_uuid(order)},'
                      f'"entry_type":"transfer","amount":{amount},"currency":"{CURRENCY}",'
                      f'"balance_after":{balances[payee]},"counterparty":"{owners[payer]}",'
                      f'"reference":""}}'),
                event(order, 2, SUCCEEDED, f'{at()},"postings":[{_posting(str(ids[payer]), -amount)},'
                      f'{_posting(str(ids[payee]), amount)}]}}'),
            ]
        made += len(batch)
        yield batch


def _uuid(value: uuid.UUID) -> str:
    return f'{{"_type_":"uuid_hex","_data_":"{value.hex}"}}'


def _posting(account: str, amount: int) -> str:
    return f'{{"account_id":"{account}","amount":{amount},"currency":"{CURRENCY}"}}'


def check_history(app: GoPay) -> None:
    """The written events are the ones GoPay's mapper stores: decoded and stored again, the same."""
    for batch in itertools.islice(history(events=10**9, wallets=3, seed=1), 6):
        for stored in batch:
            again = app.mapper.to_stored_event(app.mapper.to_domain_event(stored))
            assert (again.topic, again.state) == (stored.topic, stored.state), stored


def fill(system: System, events: int, wallets: int, batch_size: int) -> int:
    """Store the history in batches through GoPay's recorder; how many events were stored."""
    pending: list[StoredEvent] = []
    stored = 0
    check_history(system.app)
    for events_of_one_command in history(events, wallets, seed=7):
        pending += events_of_one_command
        if len(pending) >= batch_size:
            system.app.recorder.insert_events(pending)
            stored += len(pending)
            pending = []
    if pending:
        system.app.recorder.insert_events(pending)
        stored += len(pending)
    return stored


def server_cpu(data_dir: Path) -> float:
    """CPU seconds the PostgreSQL server has used so far: the postmaster, the processes it
    has reaped and those still running (Linux's /proc)."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        pid, parent = int(entry.name), int(fields[1])
        if pid == postmaster:
            total += sum(int(f) for f in fields[11:15])  # its own and its reaped children's
        elif parent == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def timed(what: str, events: int, work, data_dir: Path) -> float:  # type: ignore[no-untyped-def]
    started, python, server = time.perf_counter(), time.process_time(), server_cpu(data_dir)
    result = work()
    seconds = time.perf_counter() - started
    python, server = time.process_time() - python, server_cpu(data_dir) - server
    load = os.getloadavg()[0]
    print(f"{what:<28} {seconds:8.2f} s   {events / seconds:>10,.0f} events/s   "
          f"CPU: Python {python:6.1f} s, PostgreSQL {server:6.1f} s   load {load:.1f}"
          + (f"   {result}" if result is not None else ""), flush=True)
    return seconds


def each_check(system: System, audit) -> None:  # type: ignore[no-untyped-def]
    """Each statement verify runs, alone, one after the other on one snapshot connection, with
    the CPU its backend took (verify runs them side by side: this says what each costs)."""
    recorder = system.app.recorder
    with recorder.snapshot() as conn:
        extent = recorder.chain_extent(conn)
        first, last = extent["first"] or 0, extent["last"] or -1
        ranges = [(start, min(start + audit.RANGE - 1, last))
                  for start in range(first, last + 1, audit.RANGE)]
        # As verify runs them: the payment orders' check answers for the books on its way.
        work = [(check.args[0], partial(check, states=recorder.stored_states))
                for check in system.read_side.checks(Books())]
        work += [("the books alone (verify: only if that cannot)",
                  partial(audit.books_balance, recorder)),
                 (f"the chain ({len(ranges)} ranges)", lambda c: [
                     recorder.compare_chain(c, first=lo, last=hi, limit=audit.SHOWN)["held"]
                     for lo, hi in ranges]),
                 ("the blocks' links", recorder.broken_blocks)]
        backend = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        for name, check in work:
            started, cpu = time.perf_counter(), process_cpu(backend)
            check(conn)
            print(f"  {name:<45} {time.perf_counter() - started:6.2f} s   "
                  f"CPU: PostgreSQL {process_cpu(backend) - cpu:5.2f} s", flush=True)


def process_cpu(pid: int) -> float:
    """CPU seconds one process has used so far (Linux's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--wallets", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500, help="events per stored batch (block)")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL folder")
    parser.add_argument("--store", type=Path,
                        help="a folder kept by --keep: time the steps on it, without filling")
    parser.add_argument("--steps", default="rebuild,verify,export,import",
                        help="which steps to time, comma-separated (default: all; `checks` "
                             "times each of verify's statements alone, on one connection)")
    args = parser.parse_args()
    steps = set(args.steps.split(","))

    from gopay.reconcile import audit, export

    workdir = args.store or Path(tempfile.mkdtemp(prefix="gopay-bench-audit-"))
    server = EmbeddedPostgres(workdir / "data").start()
    try:
        url = server.url
        settings = Settings(database_url=url, var_dir=workdir / "var", secret_key=SECRET_KEY,
                            kyc_limits=json.loads(UNLIMITED))
        prepare_database(settings, url)
        system = System.connect(settings, url)
        if args.store:
            events = system.app.recorder.max_notification_id() or 0
            print(f"{events:,} events stored in {workdir}", flush=True)
        else:
            started = time.perf_counter()
            events = fill(system, args.events, args.wallets, args.batch)
            print(f"stored {events:,} events in batches of {args.batch} "
                  f"in {time.perf_counter() - started:.1f} s", flush=True)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
            audit.checkpoint(system.app, system.signer)
        data_dir = server.data_dir

        def verified() -> str:
            verdict = audit.verify(system.app, system.signer, system.read_side)
            return f"ok={verdict.ok} checked={verdict.events_checked:,}"

        if "rebuild" in steps:
            timed("projections rebuild", events, system.read_side.rebuild, data_dir)
        if "checks" in steps:
            each_check(system, audit)
        if "verify" in steps:
            timed("verify", events, verified, data_dir)
        exported = workdir / "history.tar"

        def head(manifest: dict) -> str:  # type: ignore[type-arg]
            return f"{manifest['events']:,} events, chain head at {manifest['chain_head']['position']:,}"

        if "export" in steps or "import" in steps:
            timed("export", events, lambda: head(export.export_history(system.app, exported)),
                  data_dir)
            print(f"{'':<28} {exported.stat().st_size / 2**20:,.0f} MiB", flush=True)
        system.close()

        if "import" in steps:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("DROP DATABASE IF EXISTS imported")
                conn.execute("CREATE DATABASE imported")
            other = url.rsplit("/", 1)[0] + "/imported"
            prepare_database(settings, other)
            target = System.connect(settings, other)
            try:
                timed("import (with rebuild)", events,
                      lambda: head(export.import_history(target.app, target.signer,
                                                         target.read_side, exported)), data_dir)
            finally:
                target.close()
    finally:
        if args.keep or args.store:
            server.stop()
            print(f"kept {workdir}")
        else:
            server.destroy()
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
