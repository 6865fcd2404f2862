"""The ledger on a real PostgreSQL: whatever commands arrive, the books balance and views agree."""

from __future__ import annotations

import gc
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
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
from tenacity import stop_after_attempt, wait_fixed

from gopay.aggregates.dispute import Dispute
from gopay.aggregates.dispute import Outcome as Decision
from gopay.aggregates.errors import (
    AccountFrozen,
    CurrencyMismatch,
    DomainError,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidState,
    NotFound,
    ValidationFailed,
)
from gopay.aggregates.fees import FeeRule
from gopay.aggregates.instruments import Instrument, bank_account, card, digital_wallet
from gopay.aggregates.ledger import SystemAccount, TransactionType, system_account_names
from gopay.aggregates.money import MAX_AMOUNT, Money
from gopay.aggregates.payment_method import PaymentMethodExists
from gopay.aggregates.payment_order import PaymentOrder, order_id_for
from gopay.aggregates.psp_task import PspTask
from gopay.aggregates.wallet import Wallet
from gopay.application import GoPay, application_env
from gopay.commands import Commands, Outcome
from gopay.commands.adjustment import Adjust, Direction
from gopay.commands.disputes import OpenDispute, ResolveDispute
from gopay.commands.payment_methods import AddPaymentMethod, RemovePaymentMethod
from gopay.commands.payouts import RequestPayout
from gopay.commands.psp_outcomes import ChargeBack, ReceiveWebhook, RetryDeadLetter, SettleWithPsp
from gopay.commands.registration import Register
from gopay.commands.staff import SetFrozen
from gopay.commands.topups import RequestTopUp
from gopay.commands.transfer import Transfer
from gopay.processes.psp import CHARGEBACK, Policies, PspProcess
from gopay.projections.read_side import ReadSide
from gopay.psp.port import OperationKind, OperationStatus, PspResult
from gopay.retry import RetryPolicy
from gopay.settings import Settings
from gopay.system import System, command_context, prepare_database
from tests.conftest import new_database
from tests.fake_psp import FakePsp, Fault
from tests.fake_psp import Outcome as PspOutcome
from tests.support import PASSWORD, SECRET_KEY, UNLIMITED

MAX_WALLETS = 4
CURRENCIES = ("USD", "EUR")
STAFF_EMAIL = "admin@gopay.example"

# Refusals the ledger decides: for a keyed request it records a failed order, so a retry of
# the key repeats the refusal instead of trying again.
RECORDED_REFUSALS = (InsufficientFunds, AccountFrozen)

# GoPay's fees: a top-up's comes out of the money that arrives, a payout's on top of it.
TOP_UP_FEE, PAYOUT_FEE = 30, 50
FEES = {TransactionType.TOPUP: FeeRule(fixed=TOP_UP_FEE),
        TransactionType.PAYOUT: FeeRule(fixed=PAYOUT_FEE)}
# PSP work is tried three times before it is dead-lettered, at once each time (the policies'
# timing is the unit tests' business; here it is what happens in between that counts).
ATTEMPTS = 3
AT_ONCE = RetryPolicy(wait=wait_fixed(0), stop=stop_after_attempt(ATTEMPTS))
POLICIES = Policies(call=AT_ONCE, webhook=AT_ONCE)
# What customers save to pay with: two cards, two bank accounts, a PayPal account.
INSTRUMENTS = ("visa", "mastercard", "iban-de", "iban-gb", "paypal")
# The PSP's final word on an operation: mostly paid (keeping a fee), else not, and why.
psp_outcomes = st.sampled_from([True, True, True, False]).flatmap(
    lambda paid: st.builds(PspOutcome, fee=st.integers(0, 40)) if paid else st.builds(
        PspOutcome, status=st.just(OperationStatus.FAILED),
        failure_reason=st.sampled_from(["card_declined", "insufficient_funds", "account_closed"])))

amounts = st.integers(1, 20_000) | st.just(MAX_AMOUNT)
# Top-ups and payouts mostly of what wallets hold, so that most go through to the PSP.
psp_amounts = st.sampled_from([False] * 7 + [True]).flatmap(
    lambda huge: st.just(MAX_AMOUNT) if huge else st.integers(1, 3_000))
keys = st.sampled_from([None, None, "key-1", "key-2"])
one_time_in_four = st.sampled_from([False, False, False, True])
one_time_in_eight = st.sampled_from([False] * 7 + [True])
# What may come between GoPay and the PSP on a call: the answer lost after the work was
# done, or the request lost before it was.
faults = st.sampled_from([None, None, Fault.LOST_ANSWER, Fault.LOST_REQUEST, Fault.BUSY])


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
    """A money request as a client sends it, kept so it can be sent again."""

    operation: str  # "transfer", "adjustment", "topup" or "payout", as order_id_for names them
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
        if self.operation in ("topup", "payout"):
            assert self.caller_wallet_id is not None
            request = RequestTopUp if self.operation == "topup" else RequestPayout
            return commands.run(request(
                caller_id=self.caller_id, wallet_id=self.caller_wallet_id,
                payment_method_id=UUID(fields["payment_method_id"]), money=money,
                idempotency_key=self.key, fingerprint=self.fingerprint))
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

    @property
    def deferred(self) -> bool:
        """Whether the money moves only once the PSP has done its part."""
        return self.operation in ("topup", "payout")


@dataclass
class Payment:
    """A transfer that moved money: what its payer may still dispute of it."""

    order_id: UUID
    payer: Customer
    payee: Customer
    amount: int
    disputed: int = 0  # by disputes open or won


@dataclass
class OpenedDispute:
    """A dispute GoPay accepted, as the model expects it to stand."""

    dispute_id: UUID
    order_id: UUID  # its refund, waiting for the decision
    payment: Payment
    amount: int
    held: int  # what the payee's wallet could hold of it; the rest is advanced on a win
    decided: bool = False


@dataclass(frozen=True)
class SavedMethod:
    owner: Customer
    method_id: UUID
    instrument: str  # one of INSTRUMENTS
    kind: str  # card, bank_account or digital_wallet


@dataclass
class PspWork:
    """A task of PSP work as the model expects it to stand (a call, or a webhook to apply)."""

    task_id: UUID
    failures: int = 0
    dead: bool = False
    done: bool = False

    def failed(self) -> None:
        """One more attempt failed; the policy gives up after ATTEMPTS (and at once after a
        dead letter sent round again)."""
        self.failures += 1
        self.dead = self.failures >= ATTEMPTS
        if self.dead:
            event("psp work dead-lettered")


@dataclass
class ExternalOrder:
    """A top-up or payout GoPay accepted, what the PSP does with it and what GoPay knows."""

    kind: str  # "topup" or "payout"
    order_id: UUID
    customer: Customer
    method: SavedMethod
    amount: int
    fee: int  # GoPay's
    outcome: PspOutcome  # the PSP's final word
    pending_first: bool  # the PSP answers "pending" until it finishes
    call: PspWork
    status: str = "pending"  # in GoPay
    psp_fee: int = 0
    webhooks: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    dispute: tuple[str, int, int] | None = None  # the PSP's: reference, amount, fee
    taken_back: int | None = None  # what the chargeback took from the wallet, once applied

    @property
    def nonce(self) -> str:
        return str(self.order_id)

    @property
    def operation(self) -> OperationKind:
        return OperationKind.CHARGE if self.kind == "topup" else OperationKind.PAYOUT

    @property
    def held(self) -> int:
        return self.amount + self.fee if self.kind == "payout" and self.status == "pending" else 0

    @property
    def chargeback_id(self) -> UUID:
        assert self.dispute is not None
        return order_id_for(self.order_id, ChargeBack.operation, self.dispute[0])


def instrument(name: str) -> Instrument:
    today = datetime.now(UTC).date()
    return {"visa": lambda: card("4242424242424242", 12, today.year + 3, "123", "Holder", today=today),
            "mastercard": lambda: card("5555555555554444", 6, today.year + 2, "321", "Holder",
                                       today=today),
            "iban-de": lambda: bank_account("DE89370400440532013000", "Holder"),
            "iban-gb": lambda: bank_account("GB82WEST12345698765432", "Holder"),
            "paypal": lambda: digital_wallet("paypal", "holder@example.com")}[name]()


def webhook_type(result: PspResult) -> str:
    if result.kind == OperationKind.CHARGE:
        return "charge.succeeded" if result.status == OperationStatus.SUCCEEDED else "charge.failed"
    return "payout.paid" if result.status == OperationStatus.SUCCEEDED else "payout.failed"


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
                          secret_key=SECRET_KEY, db_pool_size=2, fees=FEES,
                          kyc_limits=json.loads(UNLIMITED),  # limits: tests/unit/test_limits.py
                          # Screened and recorded, never held or refused: the rules' verdicts are
                          # tests/unit/commands/test_fraud_screening.py's and the integration
                          # race's; here every payment is judged by the ledger's own rules.
                          fraud_screening="monitor")
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
        self.held: dict[UUID, int] = {}
        self.frozen: set[UUID] = set()
        # Every account's balance, summed from the postings of the orders that succeeded.
        self.journal: dict[tuple[UUID, str], int] = defaultdict(int)
        # GoPay's own accounts as the model computes them, flow by flow.
        self.accounts: dict[tuple[SystemAccount, str], int] = defaultdict(int)
        self.keyed: dict[UUID, KeyedOutcome] = {}
        self.keyed_commands: list[ClientRequest] = []
        # Money in and out: the PSP (a fake, shared by both processes, as a real one would
        # be), the methods customers saved, the orders it works on, the webhooks to apply.
        self.psp = FakePsp()
        self.psp_processes = [PspProcess(commands, self.psp, lambda limit: [], POLICIES)
                              for commands in (self.system.commands, self.other_process)]
        self.methods: list[SavedMethod] = []
        self.removed: set[UUID] = set()
        self.external: dict[UUID, ExternalOrder] = {}
        self.webhook_work: dict[UUID, PspWork] = {}
        self.webhook_orders: dict[UUID, ExternalOrder | None] = {}
        self.events_sent = 0
        self.payments: list[Payment] = []
        self.disputes: list[OpenedDispute] = []

    @property
    def database_name(self) -> str:
        return self.database_url.rsplit("/", 1)[1]

    def writer(self) -> Commands:
        """The process the next command goes to: the two take turns."""
        self.commands_sent += 1
        return self.other_process if self.commands_sent % 2 else self.system.commands

    def psp_process(self) -> PspProcess:
        """The process whose PSP work runs next: the two take turns at this too."""
        self.commands_sent += 1
        return self.psp_processes[self.commands_sent % 2]

    def available(self, wallet_id: UUID) -> int:
        return self.balances[wallet_id] - self.held[wallet_id]

    def teardown(self) -> None:
        self.replayer.close()
        self.other_app.close()
        self.system.close()
        with psycopg.connect(self.server.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {self.database_name} WITH (FORCE)")

    # Customers and their wallets

    @initialize(target=customers, data=st.data())
    def open_two_funded_usd_wallets_with_a_card(self, data: st.DataObject) -> Any:
        """Then one tops up and the other asks for a payout: whichever rules a run leaves out
        (hypothesis's swarm testing), the PSP's rules have orders to work on."""
        customers = self.new_customer("USD"), self.new_customer("USD")
        for customer in customers:
            self.adjust(customer, "credit", 10_000, wrong_currency=False,
                        key=f"opening {customer.email}", reason="opening balance")
            self.save_payment_method(customer, "visa")
        for kind, customer in zip(("topup", "payout"), customers, strict=True):
            self.request(kind, customer, data, amount=data.draw(st.integers(1, 3_000)),
                         wrong_currency=False, anyones=False, key=None,
                         outcome=data.draw(psp_outcomes, label="outcome"),
                         pending_first=data.draw(one_time_in_four, label="pending_first"))
        return multiple(*customers)

    @precondition(lambda self: len(self.wallets) < MAX_WALLETS)
    @rule(target=customers, currency=st.sampled_from(CURRENCIES))
    def open_wallet(self, currency: str) -> Customer:
        return self.new_customer(currency)

    def new_customer(self, currency: str) -> Customer:
        number = len(self.wallets) + 1
        email, phone = f"customer{number}@example.com", f"+1202555{number:04d}"
        user = self.writer().run(Register(
            email=email, password=PASSWORD, kind="person", full_name=f"Customer {number}",
            phone=phone, country="US", currency=currency)).value
        assert user.wallet_id is not None
        customer = Customer(user.id, user.wallet_id, email, phone, currency)
        self.wallets[customer.wallet_id] = customer
        self.balances[customer.wallet_id] = 0
        self.held[customer.wallet_id] = 0
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
        if direction == "debit" and amount > self.available(customer.wallet_id):
            broken.add(InsufficientFunds)
        change = amount if direction == "credit" else -amount
        if self.sent(command, broken, {customer.wallet_id: change},
                     invalid={ValidationFailed} if not reason.strip() else set()):
            self.accounts[SystemAccount.ADJUSTMENTS, currency] -= change

    def spend(self, customer: Customer, amount: int, reason: str) -> None:
        """The customer spends `amount`: staff debits of at most MAX_AMOUNT each, as they must."""
        while amount > 0:
            self.adjust(customer, "debit", min(amount, MAX_AMOUNT), wrong_currency=False,
                        key=None, reason=reason)
            amount -= MAX_AMOUNT

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
        order = self.sent(self.transfer_command(sender, name, amount, currency, key), broken,
                          {sender.wallet_id: -amount, recipient.wallet_id: amount})
        if order is not None:
            self.payments.append(Payment(order.id, sender, recipient, amount))

    # Disputes

    @rule(data=st.data(), whole=one_time_in_four, by_payee=one_time_in_eight,
          share=st.sampled_from([10, 50, 100, 150]), new_payment=st.booleans(),
          spent=one_time_in_four)
    def open_dispute(self, data: st.DataObject, whole: bool, by_payee: bool, share: int,
                     new_payment: bool, spent: bool) -> None:
        """The payer disputes a transfer (all that is left of it, or part, or too much): the
        payee's wallet holds what it can of it, frozen or not, at once. Anyone else is told
        the payment does not exist; nothing is recorded for a refusal. `spent`: the payee
        spent (nearly) all it had first, so the rest is advanced from receivables on a win."""
        if new_payment or not self.payments:
            payment = self.a_transfer_to_dispute(data)
            if payment is None:
                return
        else:
            payment = data.draw(st.sampled_from(self.payments), label="payment")
        if spent and self.available(payment.payee.wallet_id) > 0:
            left = data.draw(st.integers(0, payment.amount // 2), label="left")
            taken = self.available(payment.payee.wallet_id) - left
            self.spend(payment.payee, taken, "spent before the dispute")
        caller = payment.payee if by_payee else payment.payer
        left = payment.amount - payment.disputed
        amount = None if whole else max(1, payment.amount * share // 100)
        expected: set[type[DomainError]] = set()
        if by_payee:
            expected.add(NotFound)
        elif (amount or left) > left or not left:
            expected.add(InvalidState)
        recorded = self.app.recorder.max_notification_id()
        try:
            order = self.writer().run(OpenDispute(
                caller_id=caller.user_id, customer_wallet_id=caller.wallet_id,
                payment_id=payment.order_id, reason="not what was agreed", amount=amount)).value
        except DomainError as error:
            assert isinstance(error, tuple(expected)), (error, expected)  # noqa: PT017 - a state machine rule
            assert self.app.recorder.max_notification_id() == recorded, "refusal recorded"
            event(f"dispute refused: {type(error).__name__}")
            return
        assert not expected, f"a dispute went through, expected one of {expected}"
        claimed = amount or left
        payee = payment.payee.wallet_id
        held = max(0, min(claimed, self.available(payee)))
        event("dispute " + ("held in full" if held == claimed else
                            "held in part" if held else "not held at all"))
        self.held[payee] += held
        payment.disputed += claimed
        dispute = self.replayer.get(Dispute.id_for(order.id), Dispute)
        assert (dispute.amount, dispute.covered, dispute.status) == (claimed, held, "open")
        assert order.status == "pending"
        self.disputes.append(OpenedDispute(dispute.id, order.id, payment, claimed, held))

    def a_transfer_to_dispute(self, data: st.DataObject) -> Payment | None:
        """A transfer that goes through (funded first if need be), between two wallets of
        one currency: random transfers mostly break some rule, and disputes need payments."""
        pairs = [(payer, payee) for payer in self.wallets.values() for payee in
                 self.wallets.values() if payer != payee and payer.currency == payee.currency
                 and payer.wallet_id not in self.frozen]
        if not pairs:
            return None
        payer, payee = data.draw(st.sampled_from(pairs), label="transfer to dispute")
        amount = data.draw(st.integers(1, 3_000), label="amount paid")
        if self.available(payer.wallet_id) < amount:
            self.adjust(payer, "credit", amount, wrong_currency=False, key=None,
                        reason="correction")
        order = self.sent(self.transfer_command(payer, payee.email, amount, payer.currency,
                                                None), set(),
                          {payer.wallet_id: -amount, payee.wallet_id: amount})
        assert order is not None
        payment = Payment(order.id, payer, payee, amount)
        self.payments.append(payment)
        return payment

    @precondition(lambda self: self.disputes)
    @rule(data=st.data(), outcome=st.sampled_from(list(Decision)))
    def resolve_dispute(self, data: st.DataObject, outcome: Decision) -> None:
        """Staff decide, once: for the customer, the hold and the receivable pay all of it
        back in one entry; for the merchant, the hold is released and may be disputed or
        refunded again. A second decision is refused and moves nothing."""
        dispute = data.draw(st.sampled_from(self.disputes), label="dispute")
        recorded = self.app.recorder.max_notification_id()
        try:
            self.writer().run(ResolveDispute(dispute_id=dispute.dispute_id,
                                             staff_id=self.admin_id, outcome=outcome))
        except InvalidState:
            assert dispute.decided, "an open dispute could not be decided"
            assert self.app.recorder.max_notification_id() == recorded
            event("dispute decided again: refused")
            return
        assert not dispute.decided, "a dispute was decided twice"
        dispute.decided = True
        payment = dispute.payment
        payee, currency = payment.payee.wallet_id, payment.payee.currency
        self.held[payee] -= dispute.held
        if outcome == Decision.CUSTOMER:
            self.balances[payee] -= dispute.held
            self.balances[payment.payer.wallet_id] += dispute.amount
            self.accounts[SystemAccount.RECEIVABLES, currency] -= dispute.amount - dispute.held
            self.booked(dispute.order_id)
            event("dispute won by the customer")
        else:
            payment.disputed -= dispute.amount
            event("dispute won by the merchant")

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

    # Money in and out through the PSP

    @rule(customer=customers, name=st.sampled_from(INSTRUMENTS))
    def save_payment_method(self, customer: Customer, name: str) -> None:
        """A customer saves a card, bank account or PayPal account; the same one twice is refused."""
        saved = instrument(name)
        kept = [m for m in self.methods
                if m.owner == customer and m.instrument == name and m.method_id not in self.removed]
        try:
            method = self.writer().run(AddPaymentMethod(owner_id=customer.user_id,
                                                        instrument=saved)).value
        except PaymentMethodExists as refusal:
            assert kept, f"{name} refused as saved already: {refusal}"  # noqa: PT017 - a state machine rule
            return
        assert not kept, f"{name} saved twice"
        self.methods.append(SavedMethod(customer, method.id, name, saved.kind))

    @precondition(lambda self: len(self.methods) > len(self.wallets))
    @rule(data=st.data())
    def remove_payment_method(self, data: st.DataObject) -> None:
        """A removed method pays nothing more; an order waiting to use it fails, unless the
        PSP already did the work."""
        method: SavedMethod = data.draw(st.sampled_from(self.methods), label="method")
        try:
            self.writer().run(RemovePaymentMethod(owner_id=method.owner.user_id,
                                                  method_id=method.method_id))
        except NotFound:
            assert method.method_id in self.removed
        self.removed.add(method.method_id)

    @precondition(lambda self: self.methods)
    @rule(customer=customers, data=st.data())
    def request_top_up_or_payout(self, customer: Customer, data: st.DataObject) -> None:
        """A top-up waits for the PSP to charge; a payout's money and fee are held at once."""
        kind = data.draw(st.sampled_from(["topup", "payout"]), label="kind")
        self.request(kind, customer, data,
                     amount=data.draw(psp_amounts, label="amount"),
                     wrong_currency=data.draw(one_time_in_eight, label="wrong_currency"),
                     anyones=data.draw(one_time_in_eight, label="anyones"),
                     key=data.draw(keys, label="key"),
                     outcome=data.draw(psp_outcomes, label="outcome"),
                     pending_first=data.draw(one_time_in_four, label="pending_first"))

    def request(self, kind: str, customer: Customer, data: st.DataObject, *, amount: int,
                wrong_currency: bool, anyones: bool, key: str | None, outcome: PspOutcome,
                pending_first: bool) -> None:
        """Ask for a top-up or payout with one of the customer's own methods that suits it
        (or, `anyones`, any method saved or removed) and check it is accepted or refused as
        the model says. `outcome`: what the PSP will do with it, at once or (`pending_first`)
        after answering "pending"."""
        suits = ("card", "bank_account") if kind == "payout" else (
            "card", "bank_account", "digital_wallet")
        own = [m for m in self.methods if m.owner == customer and m.method_id not in self.removed
               and m.kind in suits]
        if not (own or anyones):  # as the app would: save a card first
            self.save_payment_method(customer, "visa")
            own = self.methods[-1:]
        method: SavedMethod = data.draw(st.sampled_from(self.methods if anyones else own),
                                        label="method")
        currency = other_currency(customer.currency) if wrong_currency else customer.currency
        fee = min(TOP_UP_FEE if kind == "topup" else PAYOUT_FEE, amount)
        command = ClientRequest(kind, customer.user_id, customer.wallet_id, (
            ("payment_method_id", str(method.method_id)), ("amount", amount),
            ("currency", currency)), key)
        broken: set[type[DomainError]] = set()
        if method.owner != customer or method.method_id in self.removed:
            broken.add(NotFound)
        if kind == "payout" and method.kind == "digital_wallet":
            broken.add(ValidationFailed)
        if currency != customer.currency:
            broken.add(CurrencyMismatch)
        if kind == "payout":
            broken |= self.broken_by_sending(customer, Money(amount, currency))
            if amount + fee > MAX_AMOUNT:
                broken.add(ValidationFailed)  # held with its fee, it is too large an amount
            if amount + fee > self.available(customer.wallet_id):
                broken.add(InsufficientFunds)
        order = self.sent(command, broken, {})
        if order is None:
            return
        assert order.planned_postings and not order.postings
        call = PspWork(PspTask.id_for_call(order.id))
        assert not self.replayer.get(call.task_id, PspTask).done
        ext = ExternalOrder(kind, order.id, customer, method, amount, fee, outcome, pending_first,
                            call)
        self.external[order.id] = ext
        self.held[customer.wallet_id] += ext.held
        self.psp.will(ext.nonce, PspOutcome(OperationStatus.PENDING) if pending_first else outcome)
        if data.draw(st.sampled_from([True, True, True, False]), label="calls at once"):
            # As `POST /v1/topups` and `/v1/payouts` do: the request's own first attempt.
            self.call_psp(ext, first=True, fault=data.draw(faults, label="fault"))

    @precondition(lambda self: self.external)
    @rule(data=st.data())
    def psp_process_calls(self, data: st.DataObject) -> None:
        """The PSP process tries a pending order's call (or, `any_order`, any order's, which
        does nothing once the order is settled): asking first what the PSP did under the
        order's nonce (unless nothing was ever sent: `first`), then calling with the same
        nonce. `fault`: the PSP does the work but its answer is lost, or the request is lost."""
        any_order = data.draw(one_time_in_four, label="any_order")
        ext = self.draw_order(data, lambda ext: any_order or not self.external_pending() or (
            ext.status == "pending" and not ext.call.dead))
        first = data.draw(st.booleans(), label="first")
        self.call_psp(ext, first=first and not any(nonce == ext.nonce for _, nonce in self.psp.calls),
                      fault=data.draw(faults, label="fault"))

    @precondition(lambda self: self.external_pending())
    @rule(data=st.data(), tries=st.integers(1, ATTEMPTS),
          why=st.sampled_from([Fault.LOST_REQUEST, Fault.BUSY]))
    def psp_is_down(self, data: st.DataObject, tries: int, why: Fault) -> None:
        """The job tries a pending order's call `tries` times while the PSP cannot be reached
        or turns every request away (neither the status query nor the call gets through):
        each attempt fails, even for an order the PSP did carry out, and the last one the
        policy allows dead-letters the call, a payout's money still held."""
        ext = self.draw_order(data, lambda ext: ext.status == "pending" and not ext.call.dead)
        for _ in range(tries):
            if not ext.call.dead:
                self.call_psp(ext, first=False, fault=why, unreachable=True)

    def call_psp(self, ext: ExternalOrder, *, first: bool, fault: Fault | None,
                 unreachable: bool = False) -> None:
        """Let a PSP process attempt the order's call, with `fault` in the way (`unreachable`:
        in the way of the status query too), and check it did what the model expects."""
        known = self.psp.operations.get(ext.nonce)
        recorded = self.app.recorder.max_notification_id()
        if fault is not None:
            self.psp.fault_next(ext.operation, fault)
        if unreachable:
            self.psp.fault_next("status", fault or Fault.LOST_REQUEST)
        self.psp_process().attempt(ext.call.task_id, first=first)
        self.psp.faults.clear()
        if ext.call.done or ext.call.dead:
            assert self.app.recorder.max_notification_id() == recorded, "a finished call ran"
            return
        if unreachable and not first:
            event(f"psp call: the PSP is unreachable ({fault})")
            ext.call.failed()
        elif known is not None and not first:
            event(f"psp call: found by asking ({known.status})")
            self.psp_answered(ext, known)
        elif ext.method.method_id in self.removed:
            event("psp call: the method is gone")
            self.settled(ext, OperationStatus.FAILED, reason="not_found")
        elif fault is not None:
            event(f"psp call: {fault}")
            ext.call.failed()
        else:
            self.psp_answered(ext, self.psp.operations[ext.nonce])
        self.check_order(ext)

    @precondition(lambda self: any(op.status == OperationStatus.PENDING
                                   for op in self.psp.operations.values()))
    @rule(data=st.data())
    def psp_finishes(self, data: st.DataObject) -> None:
        """An operation the PSP answered "pending" ends as the PSP decided."""
        ext = self.draw_order(data, lambda ext: self.at_psp(ext) == OperationStatus.PENDING)
        self.psp.finish(ext.nonce, ext.outcome)
        event(f"psp finishes: {ext.outcome.status}")

    @precondition(lambda self: None not in self.webhook_orders.values() or self.psp.operations
                  or any(ext.status != "pending" for ext in self.external.values()))
    @rule(data=st.data())
    def psp_news(self, data: st.DataObject) -> None:
        """What the PSP did reaches GoPay another way, in any order and as often as it may:
        - "status": a status query's answer, recorded without a task;
        - "webhook": the PSP's webhook for an operation it finished, or one sent "again";
        - "contradiction": a failure after a success (or the other way round), as a
          webhook or an answer: it changes nothing;
        - "stray": a webhook naming no order of GoPay's, tried until its policy gives up."""
        news: ExternalOrder | None
        via, news = data.draw(st.sampled_from([
            *([("stray", None)] if None not in self.webhook_orders.values() else []),
            *(("status", ext) for ext in self.external.values() if self.at_psp(ext)),
            *(("webhook", ext) for ext in self.external.values()
              if self.at_psp(ext) not in (None, OperationStatus.PENDING)),
            *(("webhook again", ext) for ext in self.external.values() if ext.webhooks),
            *((f"contradiction by {way}", ext) for ext in self.external.values()
              if ext.status != "pending" for way in ("webhook", "answer"))]), label="news")
        if via == "stray":
            self.events_sent += 1
            self.webhook(f"evt_{self.events_sent}", "charge.succeeded", None, {
                "psp_reference": "ch_stray", "merchant_reference": "ord_9", "amount": 100,
                "currency": "USD", "fee": 0})
            return
        assert news is not None
        ext = news
        result = self.psp.operations.get(ext.nonce)
        recorded = self.app.recorder.max_notification_id()
        if via == "status":
            assert result is not None
            self.writer().run(SettleWithPsp(order_id=ext.order_id, status=result.status,
                                            psp_reference=result.psp_reference, fee=result.fee,
                                            failure_reason=result.failure_reason))
            self.psp_answered(ext, result)
        elif via == "webhook again":
            event_id, event_type, payload = data.draw(st.sampled_from(ext.webhooks), label="event")
            assert not self.webhook(event_id, event_type, ext, payload)
        elif via == "webhook":
            assert result is not None
            self.events_sent += 1
            payload = {"psp_reference": result.psp_reference, "merchant_reference": ext.nonce,
                       "amount": result.amount, "currency": result.currency, "fee": result.fee,
                       "failure_reason": result.failure_reason}
            ext.webhooks.append((f"evt_{self.events_sent}", webhook_type(result), payload))
            self.webhook(*ext.webhooks[-1][:2], ext, payload)
            self.psp_answered(ext, result)
        else:
            event(via)
            status = (OperationStatus.FAILED if ext.status == "succeeded"
                      else OperationStatus.SUCCEEDED)
            if via == "contradiction by webhook":
                self.events_sent += 1
                late = PspResult(ext.nonce, ext.operation, status, "late", ext.amount,
                                 ext.customer.currency, 13, "late")
                self.webhook(f"evt_{self.events_sent}", webhook_type(late), ext, {
                    "psp_reference": "late", "merchant_reference": ext.nonce,
                    "amount": ext.amount, "currency": ext.customer.currency, "fee": 13,
                    "failure_reason": "late"})
            else:
                self.writer().run(SettleWithPsp(order_id=ext.order_id, status=status,
                                                psp_reference="late", fee=13,
                                                failure_reason="late"))
                assert self.app.recorder.max_notification_id() == recorded, "late news recorded"
        self.check_order(ext)

    @precondition(lambda self: any(op.kind == OperationKind.CHARGE
                                   and op.status == OperationStatus.SUCCEEDED
                                   for op in self.psp.operations.values()))
    @rule(data=st.data())
    def psp_charges_back(self, data: st.DataObject) -> None:
        """The payer's bank takes a charge back (all of it or part, the PSP keeping a fee),
        told by webhook (maybe twice) or applied as a command; before GoPay knows the top-up
        succeeded, it cannot apply yet. `spent`: the customer spent (nearly) all of it first,
        so the wallet gives back what it can and the rest is owed (receivables)."""
        ext = self.draw_order(data, lambda ext: ext.kind == "topup" and self.at_psp(ext)
                              == OperationStatus.SUCCEEDED)
        if ext.dispute is None:
            share = data.draw(st.sampled_from([100, 100, 40]), label="share")
            ext.dispute = (f"dp_{ext.nonce}", max(1, ext.amount * share // 100),
                           data.draw(st.integers(0, 20), label="fee"))
            left = data.draw(st.integers(0, ext.dispute[1] // 2), label="left")
            spent = self.available(ext.customer.wallet_id) - left
            if data.draw(one_time_in_four, label="spent") and spent > 0:
                self.spend(ext.customer, spent, "spent before the chargeback")
                event("spent before the chargeback")
        via = data.draw(st.sampled_from(["webhook", "webhook again", "command"]), label="via")
        reference, amount, dispute_fee = ext.dispute
        currency = ext.customer.currency
        if via == "command":
            recorded = self.app.recorder.max_notification_id()
            try:
                self.writer().run(ChargeBack(
                    caller_id=ext.order_id, topup_id=ext.order_id, idempotency_key=reference,
                    fingerprint=CHARGEBACK, money=Money(amount, currency), psp_fee=dispute_fee))
            except InvalidState:
                assert ext.status != "succeeded"
                assert self.app.recorder.max_notification_id() == recorded
                return
            assert ext.status == "succeeded", "charged back before the top-up's success"
            self.charged_back(ext)
            return
        payload = {"psp_reference": reference, "merchant_reference": ext.nonce,
                   "amount": amount, "currency": currency, "fee": dispute_fee}
        disputes = [sent for sent in ext.webhooks if sent[1] == CHARGEBACK]
        if via == "webhook again" and disputes:
            event_id = data.draw(st.sampled_from(disputes), label="event")[0]
        else:
            self.events_sent += 1
            event_id = f"evt_{self.events_sent}"
            ext.webhooks.append((event_id, CHARGEBACK, payload))
        self.webhook(event_id, CHARGEBACK, ext, payload)

    @precondition(lambda self: any(work.dead or not work.done for work in self.psp_work()))
    @rule(data=st.data(), staff=st.booleans())
    def retry_psp_work(self, data: st.DataObject, staff: bool) -> None:
        """The job tries every webhook task not done yet (as if its time had come); or
        (`staff`) staff send a dead letter round again, to be tried like any task that is due."""
        dead = [work for work in self.psp_work() if work.dead]
        if staff and dead:
            work: PspWork = data.draw(st.sampled_from(dead), label="dead letter")
            self.writer().run(RetryDeadLetter(staff_id=self.admin_id, task_id=work.task_id))
            work.dead = False
            event("dead letter sent round again")
            return
        for task_id, work in self.webhook_work.items():
            if not (work.done or work.dead):
                self.apply_webhook(task_id)

    # How the PSP's news is expected to land

    def draw_order(self, data: st.DataObject, which: Any) -> ExternalOrder:
        return data.draw(st.sampled_from([ext for ext in self.external.values() if which(ext)]),
                         label="order")

    def external_pending(self) -> bool:
        return any(ext.status == "pending" and not ext.call.dead for ext in self.external.values())

    def at_psp(self, ext: ExternalOrder) -> OperationStatus | None:
        """The status of the order's operation at the PSP, if the PSP has one."""
        result = self.psp.operations.get(ext.nonce)
        return None if result is None else result.status

    def psp_work(self) -> list[PspWork]:
        return [*(ext.call for ext in self.external.values()), *self.webhook_work.values()]

    def webhook(self, event_id: str, event_type: str, ext: ExternalOrder | None,
                payload: dict[str, Any]) -> bool:
        """Deliver a webhook as the route does: kept as a task, applied at once. Whether it
        was the first delivery of its event (a repeat finds its task and does nothing)."""
        task_id = PspTask.id_for_webhook(event_id)
        recorded = self.app.recorder.max_notification_id()
        task = self.writer().run(ReceiveWebhook(
            event_id=event_id, event_type=event_type,
            order_id=ext.order_id if ext else None, data=payload)).value
        if task_id in self.webhook_work:
            assert task is None and self.app.recorder.max_notification_id() == recorded
            event("webhook delivered again")
            return False
        assert task is not None and task.id == task_id
        self.webhook_work[task_id] = PspWork(task_id)
        self.webhook_orders[task_id] = ext
        self.apply_webhook(task_id)
        return True

    def apply_webhook(self, task_id: UUID) -> None:
        """The PSP process applies a webhook task: a settlement always can, a chargeback once
        its top-up has succeeded in GoPay, a webhook for no order never."""
        work, ext = self.webhook_work[task_id], self.webhook_orders[task_id]
        task = self.replayer.get(task_id, PspTask)
        self.psp_process().attempt(task_id)
        if ext is None or (task.operation == CHARGEBACK and ext.status != "succeeded"):
            work.failed()
            event(f"webhook waits: {task.operation}")
            return
        work.done = True
        if task.operation == CHARGEBACK:
            self.charged_back(ext)
        # A settlement's effect is the caller's to expect (psp_answered).

    def psp_answered(self, ext: ExternalOrder, result: PspResult) -> None:
        """What the PSP said reached GoPay: a final word settles a pending order, once."""
        if result.status == OperationStatus.PENDING:
            event("psp says pending")
            return
        self.settled(ext, result.status, fee=result.fee, reason=result.failure_reason)

    def settled(self, ext: ExternalOrder, status: OperationStatus, *, fee: int = 0,
                reason: str | None = None) -> None:
        ext.call.done = True
        ext.call.dead = False
        if ext.status != "pending":
            event(f"{ext.kind} settled again: no effect")
            return
        wallet_id, currency = ext.customer.wallet_id, ext.customer.currency
        self.held[wallet_id] -= ext.held
        ext.status, ext.psp_fee = str(status), fee
        event(f"{ext.kind} {ext.status}")
        if status != OperationStatus.SUCCEEDED:
            return
        fees = (SystemAccount.FEES, currency)
        if ext.kind == "topup":
            self.balances[wallet_id] += ext.amount - ext.fee
            self.accounts[SystemAccount.PSP_CLEARING, currency] += fee - ext.amount
        else:
            self.balances[wallet_id] -= ext.amount + ext.fee
            self.accounts[SystemAccount.PAYOUT_CLEARING, currency] += ext.amount + fee
        self.accounts[fees] += ext.fee - fee
        self.booked(ext.order_id)

    def charged_back(self, ext: ExternalOrder) -> None:
        """The wallet gives back what it has available, frozen or not; the rest is owed."""
        assert ext.dispute is not None
        if ext.taken_back is not None:
            event("chargeback again: no effect")
            return
        _, amount, fee = ext.dispute
        wallet_id, currency = ext.customer.wallet_id, ext.customer.currency
        ext.taken_back = max(0, min(amount, self.available(wallet_id)))
        event("chargeback " + ("in full" if ext.taken_back == amount else
                               "in part" if ext.taken_back else "to receivables"))
        self.balances[wallet_id] -= ext.taken_back
        self.accounts[SystemAccount.RECEIVABLES, currency] -= amount - ext.taken_back
        self.accounts[SystemAccount.PSP_CLEARING, currency] += amount + fee
        self.accounts[SystemAccount.FEES, currency] -= fee
        self.booked(ext.chargeback_id)

    def booked(self, order_id: UUID) -> None:
        """The journal entry of an order that just succeeded, as stored."""
        order = self.replayer.get(order_id, PaymentOrder)
        assert order.status == "succeeded"
        for posting in order.postings:
            self.journal[(posting.account_id, posting.currency)] += posting.amount

    def check_order(self, ext: ExternalOrder) -> None:
        """The stored order and its call are where the model says."""
        order = self.replayer.get(ext.order_id, PaymentOrder)
        assert order.status == ext.status, (ext, order.status)
        call = self.replayer.get(ext.call.task_id, PspTask)
        assert (call.done, call.dead) == (ext.call.done, ext.call.dead), (ext.call, call)

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
        if money.amount > self.available(sender.wallet_id):
            broken.add(InsufficientFunds)
        return broken

    def sent(self, command: ClientRequest, broken: set[type[DomainError]],
             movements: dict[UUID, int], invalid: set[type[DomainError]] | None = None,
             ) -> PaymentOrder | None:
        """Send a command and check it did what the model says: a refusal must change nothing.

        A request that is invalid in itself is refused first; a known idempotency key then
        answers as it did the first time (or with a conflict); otherwise any broken rule
        refuses the command. Answers the order it created, if it did.
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
            return None
        assert not expected, f"{command} went through, expected one of {expected}"
        if earlier:
            assert order.id == earlier.order_id, "a retry created a second order"
            assert self.app.recorder.max_notification_id() == recorded, "a retry was recorded"
            event(f"{command.operation} replayed")
            return None
        assert order.status == ("pending" if command.deferred else "succeeded")
        event(f"{command.operation} {'accepted' if command.deferred else 'moved money'}")
        for wallet_id, change in movements.items():
            self.balances[wallet_id] += change
        assert self.replayer.get(order.id, PaymentOrder).postings == order.postings
        for posting in order.postings:
            self.journal[(posting.account_id, posting.currency)] += posting.amount
        if command.key is not None:
            assert order.id == command.order_id
            self.keyed[order.id] = KeyedOutcome(command.fingerprint, order.id)
            self.keyed_commands.append(command)
        return order

    def refusal_recorded(self, command: ClientRequest, error: DomainError) -> None:
        """A keyed request the ledger refused is kept as a failed order that moved nothing."""
        order = self.replayer.get(command.order_id, PaymentOrder)
        assert (order.status, order.failure_reason, order.postings) == ("failed", error.code, ())
        self.keyed[order.id] = KeyedOutcome(command.fingerprint, order.id, type(error))
        self.keyed_commands.append(command)

    # What must hold after every step

    @invariant()
    def aggregates_match_the_model(self) -> None:
        """Each wallet holds what the model says, is frozen when it says, and is never negative;
        what it holds back is the sum of its pending payouts, each with its fee, and of the
        open disputes of payments it received."""
        pending: dict[UUID, dict[str, int]] = defaultdict(dict)
        for ext in self.external.values():
            if ext.held:
                pending[ext.customer.wallet_id][ext.nonce] = ext.held
        for dispute in self.disputes:
            if dispute.held and not dispute.decided:
                pending[dispute.payment.payee.wallet_id][str(dispute.order_id)] = dispute.held
        for wallet_id, customer in self.wallets.items():
            found = wallet(self.app, wallet_id)
            assert found.balance == self.balances[wallet_id] >= 0
            assert (found.currency, found.held, found.frozen) == (
                customer.currency, self.held[wallet_id], wallet_id in self.frozen)
            assert {hold_id: hold.amount for hold_id, hold in found.holds.items()} == (
                pending[wallet_id])
            assert sum(pending[wallet_id].values()) == found.held <= found.balance

    @invariant()
    def gopay_s_accounts_hold_what_the_model_computes(self) -> None:
        """psp_clearing, payout_clearing, fees, receivables and adjustments, flow by flow."""
        names = system_account_names()
        booked = {(SystemAccount(names[account]), currency): amount
                  for (account, currency), amount in self.journal.items()
                  if account in names and amount}
        assert booked == {account: amount for account, amount in self.accounts.items() if amount}

    @invariant()
    def the_psp_did_each_order_s_work_once(self) -> None:
        """One operation per nonce, and no call under a nonce the PSP already had: every
        retry asked first."""
        assert all(count == 1 for count in self.psp.work_done.values())
        assert not self.psp.repeated_calls

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

    @invariant()
    def each_order_moved_money_at_most_once(self) -> None:
        """Caught up, the read side shows each top-up, payout and chargeback as the model says:
        its status, and its lines in the wallet's history, once."""
        read_side = self.system.read_side
        read_side.catch_up()
        lines: dict[UUID, list[tuple[str, str, int]]] = defaultdict(list)
        with read_side.wallets.datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT entry_id, type, direction, amount FROM wallet_transactions "
                           "ORDER BY wallet_id, seq")
            for row in cursor.fetchall():
                lines[row["entry_id"]].append((row["type"], row["direction"], row["amount"]))
        for ext in self.external.values():
            shown = read_side.wallets.order(ext.order_id)
            assert shown is not None and shown["status"] == ext.status, (ext, shown)
            expected: list[tuple[str, str, int]] = []
            if ext.status == "succeeded" and ext.kind == "topup":
                expected = [("topup", "credit", ext.amount), ("fee", "debit", ext.fee)]
            elif ext.status == "succeeded":
                expected = [("payout", "debit", ext.amount), ("fee", "debit", ext.fee)]
            assert lines.pop(ext.order_id, []) == expected, ext
            if ext.taken_back:
                assert lines.pop(ext.chargeback_id) == [("topup", "debit", ext.taken_back)]
        assert not any(kind in ("topup", "payout") for entry in lines.values()
                       for kind, _, _ in entry), "a line of no order the model knows"

    @invariant()
    def the_psp_work_view_shows_each_task_as_the_model_does(self) -> None:
        """Every call and webhook task with its failed attempts, done or dead-lettered as the
        model says: the dead letters are exactly the tasks that gave up, the rest still owed."""
        read_side = self.system.read_side
        read_side.catch_up()
        tasks = read_side.psp_tasks
        rows = tasks.query("SELECT id, attempts, dead, done FROM psp_tasks")
        assert {row["id"]: (row["attempts"], row["dead"], row["done"]) for row in rows} == {
            work.task_id: (work.failures, work.dead, work.done) for work in self.psp_work()}
        assert {row["id"] for row in tasks.dead_letters(limit=1_000)} == {
            work.task_id for work in self.psp_work() if work.dead}
        assert {row["id"] for row in tasks.unfinished()} == {
            work.task_id for work in self.psp_work() if not (work.done or work.dead)}


class TestLedgerUnderAnyCommands:
    def test_every_invariant_holds_after_every_step(self, postgres_server: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
        """Whatever wallets, adjustments, transfers, disputes and their decisions, freezes,
        retries, top-ups, payouts and news from the PSP (late, repeated, lost or
        contradictory) come, the ledger holds."""
        # Passwords are not under test here: a light Argon2 keeps each registration cheap.
        light = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        monkeypatch.setattr("gopay.commands.registration.hash_password", light.hash)
        run_state_machine_as_test(
            lambda: LedgerMachine(postgres_server, tmp_path),
            settings=settings(max_examples=35, stateful_step_count=40, deadline=None,
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
        # A closed connection's backend leaves pg_stat_activity when it has exited, which on a
        # loaded machine takes a while; a leaked one never does.
        deadline = time.monotonic() + 30
        while connections_to(database_url) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert connections_to(database_url) == 0
