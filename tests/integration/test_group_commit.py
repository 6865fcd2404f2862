"""Group commit on PostgreSQL: batches save together, refusals fail alone, conflicts retry exactly."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from prometheus_client import REGISTRY

from gopay.aggregates.errors import DomainError, InsufficientFunds
from gopay.aggregates.money import Money
from gopay.application import GoPay, application_env
from gopay.commands import Commands
from gopay.commands.transfer import Transfer
from gopay.system import System, command_context
from tests.support import UNLIMITED, balance, open_wallets, transfer


def version_gaps(database_url: str) -> list[tuple]:
    """Aggregates whose stored versions are not exactly 1..n."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT originator_id, COUNT(*), MAX(originator_version) FROM gopay_events "
            "GROUP BY originator_id HAVING COUNT(*) <> MAX(originator_version) "
            "OR MIN(originator_version) <> 1").fetchall()


@pytest.fixture
def second_app(system: System, database_url: str) -> Iterator[Commands]:
    """Another process's application over the same database (its own memory, its own pool)."""
    app = GoPay(system.settings.key_ring(), env=application_env(database_url))
    yield Commands(command_context(app, system.settings))
    app.close()


class TestBatching:
    def test_commands_that_arrive_together_share_one_transaction(self, system: System) -> None:
        """While one batch commits, the others queue; all of them land, in fewer transactions."""
        app = system.app
        alice, bob = open_wallets(system.commands, 2, 100_000)
        batches_before = app.committer.batches

        def send(_: int) -> str:
            return transfer(system.commands, alice, bob, 10)

        with ThreadPoolExecutor(16) as pool:
            assert list(pool.map(send, range(200))) == ["succeeded"] * 200
        assert app.committer.batches - batches_before < 200
        assert balance(app, alice.wallet_id) == 98_000
        assert balance(app, bob.wallet_id) == 102_000

    def test_a_refused_command_fails_alone(self, system: System) -> None:
        """In one batch, the overdraft is refused and the commands around it still commit."""
        app = system.app
        alice, bob = open_wallets(system.commands, 2, 100)
        results: dict[int, object] = {}

        def send(index: int, amount: int) -> None:
            try:
                results[index] = transfer(system.commands, alice, bob, amount, note=str(index))
            except DomainError as error:
                results[index] = error

        # Hold the batch leadership so that all three queue up and run as one batch.
        with app.committer._leading:
            threads = [threading.Thread(target=send, args=args)
                       for args in ((0, 60), (1, 60), (2, 40))]
            for thread in threads:
                thread.start()
            while len(app.committer._queue) < 3:
                threading.Event().wait(0.01)
        for thread in threads:
            thread.join()

        refused = [i for i, r in results.items() if isinstance(r, InsufficientFunds)]
        assert len(refused) == 1 and refused[0] in (0, 1)
        assert sorted(r for r in results.values() if r == "succeeded") == ["succeeded"] * 2
        assert balance(app, alice.wallet_id) == 0
        assert balance(app, bob.wallet_id) == 200


def conflicts() -> float:
    return REGISTRY.get_sample_value("gopay_commit_conflicts_total") or 0.0


class TestTwoProcesses:
    def test_in_turn_each_process_follows_the_other_and_meets_no_conflict(
            self, system: System, second_app: Commands) -> None:
        """Taking the writers' turn, a process first applies what the other stored to the
        wallets it remembers: alternating on the same wallets, no save meets a stale version."""
        alice, bob = open_wallets(system.commands, 2, 10_000)
        before = conflicts()
        caught_up = REGISTRY.get_sample_value("gopay_commit_caught_up_events_total") or 0.0
        for step in range(20):
            commands = (system.commands, second_app)[step % 2]
            payer, payee = (alice, bob) if step % 3 else (bob, alice)
            assert transfer(commands, payer, payee, 10 + step, note=str(step)) == "succeeded"
        assert conflicts() == before
        assert (REGISTRY.get_sample_value("gopay_commit_caught_up_events_total") or 0) > caught_up
        remembered = second_app.context.app.committer.known.get(alice.wallet_id)
        assert remembered is not None
        assert balance(system.app, alice.wallet_id) == 10_000 + sum(
            (10 + step) * (-1 if step % 3 else 1) for step in range(20))

    @pytest.mark.parametrize("in_turn", [True, False], ids=["in-turn", "racing"])
    def test_conflicts_between_processes_lose_and_create_nothing(
            self, system: System, second_app: Commands, database_url: str,
            in_turn: bool) -> None:
        """Two writers with their own memory of the wallets keep exact books and gap-free
        streams, taking turns or not (then their saves race and the losers run again)."""
        if not in_turn:
            for app in (system.app, second_app.context.app):
                app.committer._turn = None
        users = open_wallets(system.commands, 6, 10_000)
        apps = [system.commands, second_app]
        moved: list[tuple] = []
        lock = threading.Lock()

        def send(seed: int) -> None:
            rng = random.Random(seed)
            sender, recipient = rng.sample(users, 2)
            amount = rng.randint(1, 3_000)
            try:
                order = rng.choice(apps).run(Transfer(
                    caller_id=sender.id, sender_wallet_id=sender.wallet_id,
                    recipient=recipient.email, money=Money(amount, "USD"),
                    idempotency_key=f"k{seed}", fingerprint="f")).value
            except InsufficientFunds:
                return
            with lock:
                moved.append((order.id, sender.wallet_id, recipient.wallet_id, amount))

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(send, range(600)))

        assert version_gaps(database_url) == []
        expected = {user.wallet_id: 10_000 for user in users}
        for _, payer, payee, amount in {m[0]: m for m in moved}.values():
            expected[payer] -= amount
            expected[payee] += amount
        fresh = GoPay(system.settings.key_ring(), env=application_env(database_url))  # replays
        try:
            assert {w: balance(fresh, w) for w in expected} == expected
        finally:
            fresh.close()
        system.read_side.catch_up()
        assert system.read_side.wallets.ledger_totals() == {"USD": 0}
        assert len(moved) > 100


class TestStoreOutage:
    def test_callers_hear_the_failure_and_nothing_runs_later(self, tmp_path) -> None:
        """While PostgreSQL is down a command fails; once it is back, nothing failed runs by itself."""
        import warnings

        from gopay.settings import Settings
        from gopay.system import prepare_database

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from gopay.embedded_postgres import EmbeddedPostgres
        server = EmbeddedPostgres(tmp_path / "pg").start()
        try:
            settings = Settings(database_url=server.url, var_dir=tmp_path / "var",
                                kyc_limits=json.loads(UNLIMITED))
            prepare_database(settings, server.url)
            system = System.connect(settings, server.url)
            alice, bob = open_wallets(system.commands, 2, 1_000)

            def send() -> None:
                transfer(system.commands, alice, bob, 100)

            server.stop(mode="immediate")
            with pytest.raises(Exception):  # noqa: B017, PT011 - any store error, as long as it is raised
                send()
            server.start()
            send()
            assert balance(system.app, alice.wallet_id) == 900
            assert balance(system.app, bob.wallet_id) == 1_100
            system.close()
        finally:
            server.destroy()
