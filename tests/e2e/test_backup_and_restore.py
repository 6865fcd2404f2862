"""Backups and point-in-time recovery: `gopay backup` and `gopay restore` on a live store.

Each test runs its own PostgreSQL that archives its write-ahead log, as production would
with GOPAY_WAL_ARCHIVE, and drives GoPay for real while the backup is taken.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import httpx
import psycopg
import pytest

from gopay.aggregates.errors import InsufficientFunds
from gopay.aggregates.money import Money
from gopay.aggregates.wallet import Wallet
from gopay.application import GoPay, application_env
from gopay.commands.registration import Register
from gopay.commands.transfer import Transfer
from gopay.security.keyring import KeyRing
from gopay.settings import Settings
from gopay.system import System, prepare_database
from tests.support import (
    PASSWORD,
    UNLIMITED,
    GoPayServer,
    fund,
    gopay_env,
    login,
    open_wallets,
    register,
    run_gopay,
    staff,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from gopay.embedded_postgres import EmbeddedPostgres
    from gopay.operations.backup import archive_current_segment


@pytest.fixture
def archiving_store(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own that archives its log into tmp_path/archive."""
    server = EmbeddedPostgres(tmp_path / "pg", wal_archive=tmp_path / "archive").start()
    yield server
    server.destroy()


def gopay(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The gopay command as an operator runs it: its exit code and words are checked."""
    return subprocess.run([sys.executable, "-m", "gopay", *args], env=env, text=True,
                          capture_output=True, timeout=300, check=False)


def embedded_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """GoPay on its embedded store under var_dir (no GOPAY_DATABASE_URL)."""
    env = gopay_env("", var_dir, **extra)
    del env["GOPAY_DATABASE_URL"]
    return env


def event_count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM gopay_events").fetchone()[0]  # type: ignore[index]


class TestPointInTimeRecovery:
    def test_a_restore_to_a_moment_holds_exactly_what_was_committed_by_then(
            self, tmp_path: Path) -> None:
        """Restored to T, balances, histories and events are those at T, and nothing later is there."""
        archive, backup = tmp_path / "archive", tmp_path / "backup"
        keys = KeyRing.new_entry()  # the master keys live apart from the backups
        live_env = embedded_env(tmp_path / "var", GOPAY_WAL_ARCHIVE=str(archive),
                                GOPAY_ENCRYPTION_KEYS=keys)
        live_store = EmbeddedPostgres(tmp_path / "var" / "postgres")
        restored_env = embedded_env(tmp_path / "restored-var", GOPAY_WAL_ARCHIVE=str(archive),
                                    GOPAY_ENCRYPTION_KEYS=keys)
        restored_store = EmbeddedPostgres(tmp_path / "restored-var" / "postgres")
        live = GoPayServer.create(live_env, tmp_path / "live.log")
        restored = GoPayServer.create(restored_env, tmp_path / "restored.log")
        try:
            live.start()
            alice, bob = register(live.url), register(live.url)
            fund(staff(live.url, live_env), alice.user["wallet_id"], 100_000)
            send(alice, bob, 1_000, times=3)

            taken = gopay("backup", str(backup), env=live_env)  # the store `gopay serve` runs
            assert taken.returncode == 0, taken.stderr
            assert "verified" in taken.stdout
            time.sleep(1)  # the backup's label keeps its start to the second
            send(alice, bob, 500, times=2)
            send(bob, alice, 200, times=1)
            database_url = live_store.start().url  # the running one, adopted
            with psycopg.connect(database_url) as conn:
                target_time, events_at_target = conn.execute(
                    "SELECT now(), (SELECT count(*) FROM gopay_events)").fetchone()  # type: ignore[misc]
            at_target = {name: (client.balance(), client.history())
                         for name, client in (("alice", alice), ("bob", bob))}

            send(alice, bob, 100, times=4)  # after T: commits the restore must leave out
            carol = register(live.url).user["email"]
            assert event_count(database_url) > events_at_target
            archive_current_segment(database_url)
            live.stop()

            restoring = gopay("restore", str(backup), "--target-time", target_time.isoformat(),
                              env=restored_env)
            assert restoring.returncode == 0, restoring.stderr
            assert "ready to start" in restoring.stdout
            restored.start()  # `gopay serve` starts the restored embedded store as it is
            assert event_count(restored_store.start().url) == events_at_target
            for name, email in (("alice", alice.user["email"]), ("bob", bob.user["email"])):
                client = login(restored.url, email)
                assert (client.balance(), client.history()) == at_target[name], name
            assert at_target["alice"][0] == 100_000 - 3_000 - 1_000 + 200
            assert login_status(restored.url, carol) == 401  # registered after T
        finally:
            restored.stop()
            live.stop()
            restored_store.destroy()
            live_store.destroy()


class TestDrills:
    def test_a_drill_restored_beside_the_store_never_leads_a_later_restore_astray(
            self, tmp_path: Path, archiving_store: EmbeddedPostgres) -> None:
        """A drill's own commits, archived in the same folder, stay out of a later restore."""
        env = gopay_env(archiving_store.url, tmp_path / "var",
                        GOPAY_WAL_ARCHIVE=str(archiving_store.wal_archive))
        settings = Settings(database_url=archiving_store.url, var_dir=tmp_path / "var")
        prepare_database(settings, archiving_store.url)
        assert gopay("backup", str(tmp_path / "backup"), env=env).returncode == 0
        before_drill = register_user(settings, archiving_store.url)
        archive_current_segment(archiving_store.url)

        drilled = gopay("restore", str(tmp_path / "backup"), "--data", str(tmp_path / "drill"),
                        env=env)
        assert drilled.returncode == 0, drilled.stderr
        drill = EmbeddedPostgres(tmp_path / "drill", wal_archive=archiving_store.wal_archive)
        try:
            drill.start()
            in_drill = register_user(settings, drill.url)
            archive_current_segment(drill.url)  # the drill's timeline is in the archive now
        finally:
            drill.destroy()
        after_drill = register_user(settings, archiving_store.url)
        archive_current_segment(archiving_store.url)

        restoring = gopay("restore", str(tmp_path / "backup"), "--data", str(tmp_path / "copy"),
                          env=env)
        assert restoring.returncode == 0, restoring.stderr
        copy = EmbeddedPostgres(tmp_path / "copy").start()
        try:
            users = {before_drill, in_drill, after_drill}
            assert stored_aggregates(copy.url, users) == {before_drill, after_drill}
        finally:
            copy.destroy()


class TestBackupUnderLoad:
    def test_a_backup_taken_during_transfers_restores_balanced_books(
            self, tmp_path: Path, archiving_store: EmbeddedPostgres) -> None:
        """Every transfer answered before the backup is in it, and the ledger sums to zero."""
        settings = Settings(database_url=archiving_store.url, var_dir=tmp_path / "var",
                            kyc_limits=json.loads(UNLIMITED))
        prepare_database(settings, archiving_store.url)
        system = System.connect(settings, archiving_store.url)
        wallets = open_wallets(system.commands, 8, 100_000)
        answered: list[tuple[float, UUID]] = []  # (when the transfer was answered, its order)
        stop = threading.Event()

        def keep_transferring(seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(100_000):  # bounded; the test stops it much sooner
                if stop.is_set():
                    return
                sender, recipient = rng.sample(wallets, 2)
                try:
                    order = system.commands.run(Transfer(
                        caller_id=sender.id, sender_wallet_id=sender.wallet_id,
                        recipient=recipient.email, money=Money(rng.randint(1, 500), "USD"),
                        fingerprint="f")).value
                except InsufficientFunds:
                    continue
                answered.append((time.monotonic(), order.id))

        senders = [threading.Thread(target=keep_transferring, args=(seed,)) for seed in range(4)]
        env = gopay_env(archiving_store.url, tmp_path / "var")
        try:
            for thread in senders:
                thread.start()
            deadline = time.monotonic() + 60
            while len(answered) < 100:
                assert time.monotonic() < deadline and all(t.is_alive() for t in senders)
                time.sleep(0.01)
            started = time.monotonic()
            taken = gopay("backup", str(tmp_path / "backup"), env=env)
            finished = time.monotonic()
            time.sleep(0.5)
        finally:
            stop.set()
            for thread in senders:
                thread.join()
            system.close()
        assert taken.returncode == 0, taken.stderr
        before = {order for at, order in answered if at < started}
        during = {order for at, order in answered if started <= at <= finished}
        after = {order for at, order in answered if at > finished}
        assert during and after, "transfers ran while the backup was taken, and after it"

        restoring = gopay("restore", str(tmp_path / "backup"), "--data", str(tmp_path / "copy"),
                          env=env)  # no archive: the backup alone
        assert restoring.returncode == 0, restoring.stderr
        copy = EmbeddedPostgres(tmp_path / "copy").start()
        try:
            stored = stored_aggregates(copy.url, before | during | after)
            assert before <= stored
            assert not after & stored, "the copy is the backup, not the live store"
            restored = System.connect(settings, copy.url)
            try:
                restored.read_side.catch_up()
                assert restored.read_side.wallets.ledger_totals() == {"USD": 0}
                replayed = GoPay(settings.key_ring(), env=application_env(copy.url))
                try:  # from the events alone: what was funded is all still there
                    balances = [replayed.get(w.wallet_id, Wallet).balance for w in wallets]
                finally:
                    replayed.close()
                assert sum(balances) == 8 * 100_000 and min(balances) >= 0
                projected = restored.read_side.wallets.balances()
                assert [projected[w.wallet_id] for w in wallets] == balances
            finally:
                restored.close()
        finally:
            copy.destroy()


class TestDamagedBackup:
    def test_a_damaged_backup_is_refused_and_nothing_is_restored(
            self, tmp_path: Path, archiving_store: EmbeddedPostgres) -> None:
        """One flipped byte in a backed-up table: verification and restore refuse it, exit 1."""
        env = gopay_env(archiving_store.url, tmp_path / "var",
                        GOPAY_WAL_ARCHIVE=str(archiving_store.wal_archive))
        run_gopay("staff", "create", "--email", "admin@gopay.example", "--password", PASSWORD,
                  "--role", "admin", env=env)
        backup = tmp_path / "backup"
        assert gopay("backup", str(backup), env=env).returncode == 0
        assert gopay("backup", str(backup), "--verify", env=env).returncode == 0

        with psycopg.connect(archiving_store.url) as conn:
            (events_file,) = conn.execute(
                "SELECT pg_relation_filepath('gopay_events')").fetchone()  # type: ignore[misc]
        damaged = backup / events_file
        content = bytearray(damaged.read_bytes())
        content[len(content) // 2] ^= 0x01
        damaged.write_bytes(bytes(content))

        verifying = gopay("backup", str(backup), "--verify", env=env)
        assert verifying.returncode == 1
        assert "damaged" in verifying.stderr and events_file in verifying.stderr
        assert "checksum mismatch" in verifying.stderr
        restoring = gopay("restore", str(backup), "--data", str(tmp_path / "copy"), env=env)
        assert restoring.returncode == 1
        assert "damaged" in restoring.stderr and "Traceback" not in restoring.stderr
        assert not (tmp_path / "copy").exists()

    def test_a_restore_never_overwrites_a_store(
            self, tmp_path: Path, archiving_store: EmbeddedPostgres) -> None:
        """A non-empty data folder is left as it was, and the command says why (exit 1)."""
        env = gopay_env(archiving_store.url, tmp_path / "var")
        backup = tmp_path / "backup"
        assert gopay("backup", str(backup), env=env).returncode == 0
        occupied = tmp_path / "occupied"
        occupied.mkdir()
        (occupied / "PG_VERSION").write_text("18\n")
        restoring = gopay("restore", str(backup), "--data", str(occupied), env=env)
        assert restoring.returncode == 1
        assert "not empty" in restoring.stderr
        assert [path.name for path in occupied.iterdir()] == ["PG_VERSION"]


def send(payer, payee, amount: int, *, times: int) -> None:  # type: ignore[no-untyped-def]
    for _ in range(times):
        response = payer.post("/v1/transfers", {"recipient": payee.user["email"],
                                                "amount": amount, "currency": "USD"},
                              key=str(uuid.uuid4()))
        assert response.status_code == 201, response.text


def login_status(base_url: str, email: str) -> int:
    return httpx.post(f"{base_url}/v1/auth/login", json={"email": email, "password": PASSWORD},
                      timeout=30).status_code


def register_user(settings: Settings, database_url: str) -> UUID:
    system = System.connect(settings, database_url)
    try:
        return system.commands.run(Register(
            email=f"{uuid.uuid4().hex[:8]}@example.com", password="x" * 12, kind="person",
            full_name="P", country="US")).value.id
    finally:
        system.close()


def stored_aggregates(database_url: str, orders: set[UUID]) -> set[UUID]:
    """Which of these aggregates (payment orders, users) the store holds."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT DISTINCT originator_id FROM gopay_events "
                            "WHERE originator_id = ANY(%s)", (list(orders),)).fetchall()
    return {row[0] for row in rows}
