"""The ledger on a real PostgreSQL: whatever commands arrive, the books balance and views agree."""

from __future__ import annotations

import gc
import json
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from argon2 import PasswordHasher
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from gopay.aggregates.errors import (
    AccountFrozen,
    CurrencyMismatch,
    DomainError,
    IdempotencyConflict,
    InsufficientFunds,
    NotFound,
    ValidationFailed,
)
from gopay.aggregates.ledger import system_account_names
from gopay.aggregates.money import MAX_AMOUNT, Money
from gopay.aggregates.payment_order import PaymentOrder, order_id_for
from gopay.aggregates.wallet import Wallet
from gopay.application import GoPay, application_env
from gopay.commands import Commands, Outcome
from gopay.commands.adjustment import Adjust, Direction
from gopay.commands.registration import Register
from gopay.commands.staff import SetFrozen
from gopay.commands.transfer import Transfer
from gopay.projections.read_side import ReadSide
from gopay.settings import Settings
from gopay.system import System, command_context, prepare_database
from tests.conftest import new_database
from tests.support import PASSWORD, SECRET_KEY, UNLIMITED

MAX_WALLETS = 4
CURRENCIES = ("USD", "EUR")
STAFF_EMAIL = "admin@gopay.example"

# Refusals the ledger decides: for a keyed request it records a failed order, so a retry of
# the key repeats the refusal instead of trying again.
RECORDED_REFUSALS = (InsufficientFunds, AccountFrozen)

amounts = st.integers(1, 20_000) | st.just(MAX_AMOUNT)
keys = st.sampled_from([None, None, "key-1", "key-2"])
one_time_in_four = st.sampled_from([False, False, False, True])


@dataclass(frozen=True)
class Customer:
    user_id: UUID
    wallet_id: UUID
    email: str
    phone: str
    currency: str


@dataclass(frozen=True)
class KeyedOutcome:
    """What the first request under an idempotency key did: its order, or a recorded refusal."""

    fingerprint: str
    order_id: UUID
    refusal: type[DomainError] | None = None


@dataclass(frozen=True)
class ClientRequest:
    """A transfer or an adjustment as a client sends it, kept so it can be sent again."""

    operation: str  # "transfer" or "adjustment", as order_id_for names them
    caller_id: UUID
    caller_wallet_id: UUID | None
    body: tuple[tuple[str, Any], ...]
    key: str | None

    @property
    def fields(self) -> dict[str, Any]:
        return dict(self.body)

    @property
    def fingerprint(self) -> str:
        return json.dumps(self.fields, sort_keys=True)

    @property
    def order_id(self) -> UUID:
        assert self.key is not None
        return order_id_for(self.caller_id, self.operation, self.key)

    def send(self, commands: Commands) -> Outcome[PaymentOrder]:
        fields = self.fields
        money = Money.positive(fields["amount"], fields["currency"])
        if self.operation == "transfer":
            assert self.caller_wallet_id is not None
            return commands.run(Transfer(
                caller_id=self.caller_id, sender_wallet_id=self.caller_wallet_id,
                recipient=fields["recipient"], money=money, note=fields["note"],
                idempotency_key=self.key, fingerprint=self.fingerprint))
        return commands.run(Adjust(
            caller_id=self.caller_id, wallet_id=UUID(fields["wallet_id"]),
            direction=Direction(fields["direction"]), money=money, reason=fields["reason"],
            idempotency_key=self.key, fingerprint=self.fingerprint))

    def with_another_amount(self) -> ClientRequest:
        fields = self.fields
        fields["amount"] = fields["amount"] % MAX_AMOUNT + 1
        return replace(self, body=tuple(fields.items()))


def view_rows(read_side: ReadSide) -> dict[str, Any]:
    """Every row of every read-model table, in a stable order, and how far the views have got."""
    rows: dict[str, Any] = {"position": read_side.position()}
    for view in read_side.runner.views:
        with view.datastore.transaction(commit=False) as cursor:
            for table in view.tables:
                cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - the view's own table names
                rows[table] = sorted(cursor.fetchall(), key=repr)
    return rows


def ledger_accounts(read_side: ReadSide) -> dict[tuple[UUID, str], int]:
    """The projected balance of every ledger account that is not zero."""
    with read_side.wallets.datastore.transaction(commit=False) as cursor:
        cursor.execute("SELECT * FROM ledger_accounts WHERE balance <> 0")
        return {(row["account_id"], row["currency"]): row["balance"]
                for row in cursor.fetchall()}


def connections_to(database_url: str) -> int:
    """How many other sessions are connected to this database."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                           "current_database() AND pid <> pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def register_admin(commands: Commands) -> UUID:
    return commands.run(Register(email=STAFF_EMAIL, password=PASSWORD, kind="staff",
                                 full_name="Admin", role="admin")).value.id


def wallet(app: GoPay, wallet_id: UUID) -> Wallet:
    return app.get(wallet_id, Wallet)


def other_currency(currency: str) -> str:
    return next(other for other in CURRENCIES if other != currency)


class LedgerMachine(RuleBasedStateMachine):
    """GoPay in two processes over one database, next to a model of what every balance must be."""

    customers = Bundle("customers")

    def __init__(self, server: Any, var_dir: Path) -> None:
        super().__init__()
        self.server = server
        self.database_url = new_database(server)
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            # Hundreds of small commits per run: skip waiting for each WAL flush (test data only).
            conn.execute(f"ALTER DATABASE {self.database_name} SET synchronous_commit = off")
        config = Settings(database_url=self.database_url, var_dir=var_dir,
                          secret_key=SECRET_KEY, db_pool_size=2,
                          kyc_limits=json.loads(UNLIMITED))  # limits: tests/unit/test_limits.py
        prepare_database(config, self.database_url)
        self.system = System.connect(config, self.database_url)
        self.app = self.system.app
        # The same event store without an aggregate cache: every read replays the events.
        self.replayer = GoPay(config.key_ring(),
                              env={**application_env(self.database_url, pool_size=1),
                                    "AGGREGATE_CACHE_MAXSIZE": ""})
        assert self.replayer.repository.cache is None
        # A second API process: its own memory, committer and pool over the same database.
        # Commands alternate between the two, so each often works on what the other changed.
        self.other_app = GoPay(config.key_ring(),
                               env=application_env(self.database_url, pool_size=2))
        self.other_process = Commands(command_context(self.other_app, config))
        self.commands_sent = 0
        self.admin_id = register_admin(self.system.commands)
        self.wallets: dict[UUID, Customer] = {}
        self.balances: dict[UUID, int] = {}
        self.frozen: set[UUID] = set()
        # Every account's balance, summed from the postings of the orders that succeeded.
        self.journal: dict[tuple[UUID, str], int] = defaultdict(int)
        self.keyed: dict[UUID, KeyedOutcome] = {}
        self.keyed_commands: list[ClientRequest] = []

    @property
    def database_name(self) -> str:
        return self.database_url.rsplit("/", 1)[1]

    def writer(self) -> Commands:
        """The process the next command goes to: the two take turns."""
        self.commands_sent += 1
        return self.other_process if self.commands_sent % 2 else self.system.commands

    def teardown(self) -> None:
        self.replayer.close()
        self.other_app.close()
        self.system.close()
        with psycopg.connect(self.server.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {self.database_name} WITH (FORCE)")

    # Customers and their wallets

    @initialize(target=customers)
    def open_two_funded_usd_wallets(self) -> Any:
        customers = self.open_wallet("USD"), self.open_wallet("USD")
        for customer in customers:
            self.adjust(customer, "credit", 10_000, wrong_currency=False,
                        key=f"opening {customer.email}", reason="opening balance")
        return multiple(*customers)

    @precondition(lambda self: len(self.wallets) < MAX_WALLETS)
    @rule(target=customers, currency=st.sampled_from(CURRENCIES))
    def open_wallet(self, currency: str) -> Customer:
        number = len(self.wallets) + 1
        email, phone = f"customer{number}@example.com", f"+1202555{number:04d}"
        user = self.writer().run(Register(
            email=email, password=PASSWORD, kind="person", full_name=f"Customer {number}",
            phone=phone, country="US", currency=currency)).value
        assert user.wallet_id is not None
        customer = Customer(user.id, user.wallet_id, email, phone, currency)
        self.wallets[customer.wallet_id] = customer
        self.balances[customer.wallet_id] = 0
        return customer

    @rule(customer=customers)
    def freeze(self, customer: Customer) -> None:
        self.writer().run(SetFrozen(staff_id=self.admin_id, user_id=customer.user_id,
                                    frozen=True, reason="review"))
        self.frozen.add(customer.wallet_id)

    @rule(customer=customers)
    def unfreeze(self, customer: Customer) -> None:
        self.writer().run(SetFrozen(staff_id=self.admin_id, user_id=customer.user_id,
                                    frozen=False, reason="cleared"))
        self.frozen.discard(customer.wallet_id)

    # Moving money

    @rule(customer=customers,
          direction=st.sampled_from(["credit", "credit", "debit"]), amount=amounts,
          wrong_currency=one_time_in_four, key=keys,
          reason=st.sampled_from(["correction", "correction", "correction", "   "]))
    def adjust(self, customer: Customer, direction: str, amount: int, wrong_currency: bool,
               key: str | None, reason: str) -> None:
        currency = other_currency(customer.currency) if wrong_currency else customer.currency
        command = ClientRequest("adjustment", self.admin_id, None, (
            ("wallet_id", str(customer.wallet_id)), ("direction", direction),
            ("amount", amount), ("currency", currency), ("reason", reason)), key)
        broken: set[type[DomainError]] = set()
        if currency != customer.currency:
            broken.add(CurrencyMismatch)
        if direction == "debit" and customer.wallet_id in self.frozen:
            broken.add(AccountFrozen)
        if direction == "debit" and amount > self.balances[customer.wallet_id]:
            broken.add(InsufficientFunds)
        change = amount if direction == "credit" else -amount
        self.sent(command, broken, {customer.wallet_id: change},
                  invalid={ValidationFailed} if not reason.strip() else set())

    @rule(sender=customers, data=st.data(),
          named_by=st.sampled_from(["email", "EMAIL", "phone", "wallet id"]), amount=amounts,
          wrong_currency=one_time_in_four, key=keys)
    def transfer(self, sender: Customer, data: st.DataObject, named_by: str, amount: int,
                 wrong_currency: bool, key: str | None) -> None:
        others = [customer for customer in self.wallets.values() if customer != sender]
        recipient: Customer = data.draw(st.sampled_from(others), label="recipient")
        currency = other_currency(sender.currency) if wrong_currency else sender.currency
        name = {"email": recipient.email, "EMAIL": f" {recipient.email.upper()} ",
                "phone": recipient.phone, "wallet id": str(recipient.wallet_id)}[named_by]
        broken = self.broken_by_sending(sender, Money(amount, currency))
        if currency != recipient.currency:
            broken.add(CurrencyMismatch)
        self.sent(self.transfer_command(sender, name, amount, currency, key), broken,
                  {sender.wallet_id: -amount, recipient.wallet_id: amount})

    @rule(sender=customers,
          named_by=st.sampled_from(["email", "phone", "wallet id"]), amount=amounts, key=keys)
    def transfer_to_self(self, sender: Customer, named_by: str, amount: int,
                         key: str | None) -> None:
        """Sending money to one's own wallet, however it is named, is refused."""
        name = {"email": sender.email, "phone": sender.phone,
                "wallet id": str(sender.wallet_id)}[named_by]
        broken = self.broken_by_sending(sender, Money(amount, sender.currency))
        self.sent(self.transfer_command(sender, name, amount, sender.currency, key),
                  broken | {ValidationFailed}, {})

    @rule(sender=customers,
          name=st.sampled_from(["nobody@example.com", "+19995550100", str(UUID(int=1)),
                                "not-a-wallet", STAFF_EMAIL]),
          amount=amounts, key=keys)
    def transfer_to_nobody(self, sender: Customer, name: str, amount: int,
                           key: str | None) -> None:
        """Unknown e-mails, phones and wallet ids, and staff (who have no wallet), are not found."""
        broken = self.broken_by_sending(sender, Money(amount, sender.currency)) | {NotFound}
        self.sent(self.transfer_command(sender, name, amount, sender.currency, key),
                  broken, {})

    @precondition(lambda self: self.keyed_commands)
    @rule(data=st.data(), same_body=st.booleans())
    def retry(self, data: st.DataObject, same_body: bool) -> None:
        """Same key and body: the same order and no second effect; another body: a conflict."""
        command = data.draw(st.sampled_from(self.keyed_commands), label="command")
        self.sent(command if same_body else command.with_another_amount(), set(), {})

    @rule(page_size=st.sampled_from([3, 2000]))
    def rebuild_read_side(self, page_size: int) -> None:
        """Projected again from event zero, in pages of any size, the views are identical."""
        read_side = self.system.read_side
        read_side.catch_up()
        before = view_rows(read_side)
        read_side.runner.page_size = page_size
        read_side.rebuild()
        assert view_rows(read_side) == before

    def transfer_command(self, sender: Customer, recipient: str, amount: int, currency: str,
                         key: str | None) -> ClientRequest:
        return ClientRequest("transfer", sender.user_id, sender.wallet_id, (
            ("recipient", recipient), ("amount", amount), ("currency", currency),
            ("note", "rent")), key)

    def broken_by_sending(self, sender: Customer, money: Money) -> set[type[DomainError]]:
        """The rules a sender would break by sending this money."""
        broken: set[type[DomainError]] = set()
        if money.currency != sender.currency:
            broken.add(CurrencyMismatch)
        if sender.wallet_id in self.frozen:
            broken.add(AccountFrozen)
        if money.amount > self.balances[sender.wallet_id]:
            broken.add(InsufficientFunds)
        return broken

    def sent(self, command: ClientRequest, broken: set[type[DomainError]],
             movements: dict[UUID, int], invalid: set[type[DomainError]] | None = None) -> None:
        """Send a command and check it did what the model says: a refusal must change nothing.

        A request that is invalid in itself is refused first; a known idempotency key then
        answers as it did the first time (or with a conflict); otherwise any broken rule
        refuses the command.
        """
        earlier = self.keyed.get(command.order_id) if command.key else None
        if invalid:
            expected = invalid
        elif earlier and earlier.fingerprint != command.fingerprint:
            expected = {IdempotencyConflict}
        elif earlier:
            expected = {earlier.refusal} if earlier.refusal else set()
        else:
            expected = broken
        recorded = self.app.recorder.max_notification_id()
        try:
            order = command.send(self.writer()).value
        except DomainError as error:
            assert type(error) in expected, f"{command} raised {error!r}, expected {expected}"  # noqa: PT017 - a state machine rule
            event(f"{command.operation} refused: {type(error).__name__}")
            if command.key and not earlier and isinstance(error, RECORDED_REFUSALS):
                self.refusal_recorded(command, error)
            else:
                assert self.app.recorder.max_notification_id() == recorded, "refusal recorded"
            return
        assert not expected, f"{command} went through, expected one of {expected}"
        assert order.status == "succeeded"
        if earlier:
            assert order.id == earlier.order_id, "a retry created a second order"
            assert self.app.recorder.max_notification_id() == recorded, "a retry was recorded"
            event(f"{command.operation} replayed")
            return
        event(f"{command.operation} moved money")
        for wallet_id, change in movements.items():
            self.balances[wallet_id] += change
        assert self.replayer.get(order.id, PaymentOrder).postings == order.postings
        for posting in order.postings:
            self.journal[(posting.account_id, posting.currency)] += posting.amount
        if command.key is not None:
            assert order.id == command.order_id
            self.keyed[order.id] = KeyedOutcome(command.fingerprint, order.id)
            self.keyed_commands.append(command)

    def refusal_recorded(self, command: ClientRequest, error: DomainError) -> None:
        """A keyed request the ledger refused is kept as a failed order that moved nothing."""
        order = self.replayer.get(command.order_id, PaymentOrder)
        assert (order.status, order.failure_reason, order.postings) == ("failed", error.code, ())
        self.keyed[order.id] = KeyedOutcome(command.fingerprint, order.id, type(error))
        self.keyed_commands.append(command)

    # What must hold after every step

    @invariant()
    def aggregates_match_the_model(self) -> None:
        """Each wallet holds what the model says, is frozen when it says, and is never negative."""
        for wallet_id, customer in self.wallets.items():
            found = wallet(self.app, wallet_id)
            assert found.balance == self.balances[wallet_id] >= 0
            assert (found.currency, found.held, found.frozen) == (
                customer.currency, 0, wallet_id in self.frozen)

    @invariant()
    def books_balance_in_the_aggregates(self) -> None:
        """Wallet balances plus system-account postings sum to zero in every currency."""
        system_accounts = dict(self.journal)
        totals: dict[str, int] = defaultdict(int)
        for wallet_id, customer in self.wallets.items():
            balance = wallet(self.app, wallet_id).balance
            assert system_accounts.pop((wallet_id, customer.currency), 0) == balance
            totals[customer.currency] += balance
        assert {account for account, _ in system_accounts} <= set(system_account_names())
        for (_, currency), amount in system_accounts.items():
            totals[currency] += amount
        assert all(total == 0 for total in totals.values()), dict(totals)

    @invariant()
    def replay_rebuilds_the_wallets(self) -> None:
        """Replaying the stored events without a cache gives the wallets the application uses."""
        for wallet_id in self.wallets:
            cached, replayed = wallet(self.app, wallet_id), wallet(self.replayer, wallet_id)
            assert (replayed.version, replayed.balance, replayed.held, replayed.frozen) == (
                cached.version, cached.balance, cached.held, cached.frozen)

    @invariant()
    def projections_match_the_aggregates(self) -> None:
        """Caught up, the read side shows each wallet and its last balance_after, and balances."""
        read_side = self.system.read_side
        read_side.catch_up()
        assert all(total == 0 for total in read_side.wallets.ledger_totals().values())
        assert ledger_accounts(read_side) == {
            account: balance for account, balance in self.journal.items() if balance}
        for wallet_id in self.wallets:
            found = wallet(self.app, wallet_id)
            row = read_side.wallets.wallet(wallet_id)
            assert row is not None
            assert (row["balance"], row["held"], row["frozen"], row["version"]) == (
                found.balance, found.held, found.frozen, found.version)
            history = read_side.wallets.transactions(wallet_id, limit=1)
            assert (history[0]["balance_after"] if history else 0) == found.balance


class TestLedgerUnderAnyCommands:
    def test_every_invariant_holds_after_every_step(self, postgres_server: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
        """Whatever wallets, adjustments, transfers, freezes and retries come, the ledger holds."""
        # Passwords are not under test here: a light Argon2 keeps each registration cheap.
        light = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        monkeypatch.setattr("gopay.commands.registration.hash_password", light.hash)
        run_state_machine_as_test(
            lambda: LedgerMachine(postgres_server, tmp_path),
            settings=settings(max_examples=20, stateful_step_count=25, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow]))


class TestRebuild:
    def test_rebuild_from_event_zero_gives_identical_views(self, system: System) -> None:
        """Emptied and projected again one event per page, the read side has the same rows."""
        commands = system.commands
        admin_id = register_admin(commands)
        alice, bob, chioma = (commands.run(Register(
            email=f"{name}@example.com", password=PASSWORD, kind="person", full_name=name,
            phone=f"+120255500{number:02d}", currency=currency)).value
            for number, (name, currency) in enumerate(
                [("alice", "USD"), ("bob", "USD"), ("chioma", "EUR")]))
        assert alice.wallet_id and chioma.wallet_id

        def adjust(wallet_id: UUID, direction: str, money: Money, key: str | None = None) -> None:
            commands.run(Adjust(caller_id=admin_id, wallet_id=wallet_id,
                                direction=Direction(direction), money=money, reason="correction",
                                idempotency_key=key, fingerprint=str(money)))

        def pay_bob(recipient: str, amount: int) -> None:
            assert alice.wallet_id is not None
            commands.run(Transfer(caller_id=alice.id, sender_wallet_id=alice.wallet_id,
                                  recipient=recipient, money=Money(amount, "USD"), note="rent",
                                  fingerprint=str(amount)))

        adjust(alice.wallet_id, "credit", Money(10_000, "USD"))
        adjust(chioma.wallet_id, "credit", Money(5_000, "EUR"), key="opening")
        pay_bob(bob.email, 1_050)
        pay_bob(bob.phone, 2_000)  # type: ignore[arg-type]
        pay_bob(str(bob.wallet_id), 3)
        commands.run(SetFrozen(staff_id=admin_id, user_id=bob.id, frozen=True, reason="review"))
        pay_bob(bob.email, 7)  # a frozen wallet still receives
        adjust(alice.wallet_id, "debit", Money(40, "USD"))
        read_side = system.read_side
        read_side.catch_up()
        before = view_rows(read_side)
        assert len(before["wallet_transactions"]) == 11 and len(before["payment_orders"]) == 7
        assert len(before["users"]) == 4
        assert read_side.wallets.balances()[alice.wallet_id] == 10_000 - 3_060 - 40

        read_side.runner.page_size = 1
        read_side.rebuild()

        assert view_rows(read_side) == before


class TestFreezing:
    def test_only_customers_with_a_wallet_can_be_frozen(self, system: System) -> None:
        """Freezing a staff member or an unknown user is a 404 and records nothing."""
        app = system.app
        admin_id = register_admin(system.commands)
        position = app.recorder.max_notification_id()
        for user_id in (admin_id, UUID(int=2)):
            with pytest.raises(NotFound):
                system.commands.run(SetFrozen(staff_id=admin_id, user_id=user_id, frozen=True,
                                              reason="review"))
        assert app.recorder.max_notification_id() == position


class TestSystemLifecycle:
    def test_closing_releases_every_connection(self, settings: Settings,
                                               database_url: str) -> None:
        """After System.close() no connection to the database is left open, read side included."""
        prepare_database(settings, database_url)
        system = System.connect(settings, database_url)
        system.read_side.catch_up()
        system.app.recorder.max_notification_id()
        system.close()
        gc.collect()  # let go of whatever prepare_database left to the garbage collector
        deadline = time.monotonic() + 5
        while connections_to(database_url) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert connections_to(database_url) == 0
