"""GoPay on the library's in-memory persistence, with a clock the story sets, and its books checked."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, TypeVar
from uuid import UUID

import pyotp

from gopay.aggregates.instruments import Instrument, bank_account, card
from gopay.aggregates.ledger import Posting, SystemAccount
from gopay.aggregates.money import Money
from gopay.aggregates.payment_method import PaymentMethod
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder
from gopay.aggregates.psp_task import PspTask
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.application import GoPay
from gopay.commands import Command, Commands, Context
from gopay.commands.adjustment import Adjust, Direction
from gopay.commands.payment_methods import AddPaymentMethod
from gopay.commands.payouts import RequestPayout
from gopay.commands.psp_outcomes import SettleWithPsp
from gopay.commands.registration import Register
from gopay.commands.sign_in import SignedIn, SignIn
from gopay.commands.topups import RequestTopUp
from gopay.commands.transfer import Transfer
from gopay.commands.two_factor import EnableTotp, SetUpTotp
from gopay.group_commit import UnitOfWork
from gopay.processes.psp import Policies, PspProcess
from gopay.psp.port import OperationStatus, Psp
from gopay.security.login_throttle import MemoryFailureCounts
from gopay.settings import Settings
from gopay.system import command_context

R = TypeVar("R")

PASSWORD = "correct horse battery"
# A card and an IBAN the PSP accepts (API.md's test card and a valid German IBAN).
VISA, IBAN = "4242424242424242", "DE89370400440532013000"
# A Friday morning, mid-step of the 30-second TOTP clock.
START = datetime(2026, 3, 13, 9, 26, 40, tzinfo=UTC)


@dataclass
class SettableClock:
    """The time as the story says it is."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **duration: float) -> datetime:
        self.now += timedelta(**duration)
        return self.now


def settings(**values: Any) -> Settings:
    """GoPay's configuration as `values` say, never read from this machine's environment file."""
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]  # pydantic-settings' init option


def wallet_id(customer: User) -> UUID:
    """The id of a customer's wallet (every customer has one; staff have none)."""
    assert customer.wallet_id is not None, f"{customer.email} has no wallet"
    return customer.wallet_id


class InMemoryGoPay:
    """Commands run through the real bus and group committer against in-memory stores."""

    def __init__(self, config: Settings | None = None, clock: SettableClock | None = None) -> None:
        self.clock = clock or SettableClock()
        self.app = GoPay.in_memory()
        # The in-memory failure counts keep their own clock (PostgreSQL's are the database's):
        # the throttle's windows must follow the story's time like everything else.
        assert isinstance(self.app.stores.failures, MemoryFailureCounts)
        self.app.stores.failures.clock = self.clock
        self.commands = Commands(command_context(self.app, config or settings(), clock=self.clock))

    @property
    def context(self) -> Context:
        return self.commands.context

    def run(self, command: Command[R]) -> R:
        return self.commands.run(command).value

    def in_batch(self, work: Callable[[UnitOfWork], R]) -> R:
        """Run `work(unit)` in a group commit of its own (a later batch than any before)."""
        value, _ = self.app.committer.execute(work)
        return value

    # The people of the story

    def register(self, email: str, *, kind: str = "person", **fields: Any) -> User:
        values: dict[str, Any] = {"full_name": email.split("@", maxsplit=1)[0].title(), "password": PASSWORD,
                                  **fields}
        return self.run(Register(email=email, kind=kind, **values))

    @cached_property
    def admin(self) -> User:
        return self.register("admin@gopay.example", kind="staff", role="admin")

    def fund(self, user: User, amount: int, currency: str = "USD") -> PaymentOrder:
        """Credit `user`'s wallet from GoPay's adjustments account (signed by the admin)."""
        return self.run(Adjust(caller_id=self.admin.id, wallet_id=wallet_id(user),
                               direction=Direction.CREDIT, money=Money(amount, currency),
                               reason="opening balance", fingerprint="funding"))

    def transfer(self, sender: User, recipient: str, amount: int, currency: str = "USD",
                 **fields: Any) -> PaymentOrder:
        return self.run(Transfer(caller_id=sender.id, sender_wallet_id=wallet_id(sender),
                                 recipient=recipient, money=Money(amount, currency), **fields))

    def sign_in(self, email: str, password: str = PASSWORD, **fields: Any) -> SignedIn:
        return self.run(SignIn(email=email, password=password, **fields))

    def totp_code(self, secret: str) -> str:
        """What the user's authenticator app shows at the story's time."""
        return pyotp.TOTP(secret).at(self.clock())

    def turn_on_two_factor(self, user: User) -> tuple[str, list[str]]:
        """Set up and enable TOTP as the app would; the secret and the recovery codes.

        The code that enabled it is spent: the clock moves on to the next time step.
        """
        secret = self.run(SetUpTotp(user_id=user.id)).secret
        codes = self.run(EnableTotp(user_id=user.id, code=self.totp_code(secret)))
        self.clock.advance(seconds=30)
        return secret, codes

    # Money in and out through the PSP

    def add_method(self, user: User, instrument: Instrument) -> PaymentMethod:
        return self.run(AddPaymentMethod(owner_id=user.id, instrument=instrument))

    def add_card(self, user: User, number: str = VISA) -> PaymentMethod:
        return self.add_method(user, card(number, 12, 29, "123", "Card Holder",
                                          today=self.clock().date()))

    def add_bank_account(self, user: User, iban: str = IBAN) -> PaymentMethod:
        return self.add_method(user, bank_account(iban, "Account Holder"))

    def top_up(self, user: User, method: PaymentMethod, amount: int, currency: str = "USD",
               key: str | None = None) -> PaymentOrder:
        return self.run(RequestTopUp(caller_id=user.id, wallet_id=wallet_id(user),
                                     payment_method_id=method.id, money=Money(amount, currency),
                                     idempotency_key=key, fingerprint=f"{amount} {currency}"))

    def pay_out(self, user: User, method: PaymentMethod, amount: int, currency: str = "USD",
                key: str | None = None) -> PaymentOrder:
        return self.run(RequestPayout(caller_id=user.id, wallet_id=wallet_id(user),
                                      payment_method_id=method.id, money=Money(amount, currency),
                                      idempotency_key=key, fingerprint=f"{amount} {currency}"))

    def settle(self, order: PaymentOrder, status: OperationStatus = OperationStatus.SUCCEEDED,
               *, fee: int = 0, reason: str | None = None) -> PaymentOrder:
        """What the PSP's answer (or a status query) records: the order's outcome."""
        return self.run(SettleWithPsp(order_id=order.id, status=status,
                                      psp_reference=f"psp-{order.id}", fee=fee,
                                      failure_reason=reason))

    def psp_process(self, psp: Psp, policies: Policies | None = None) -> PspProcess:
        """The process that works through PSP tasks, finding what is due as the read side would."""
        return PspProcess(self.commands, psp, self.due_tasks, policies or Policies())

    def tasks(self) -> list[PspTask]:
        """Every PSP task, in the order they were created."""
        return [self.app.get(event.originator_id, PspTask) for event in self.all_events()
                if isinstance(event, PspTask.Created)]

    def task(self, task_id: UUID) -> PspTask:
        return self.app.get(task_id, PspTask)

    def due_tasks(self, limit: int = 100) -> list[UUID]:
        """Tasks to try now, the longest waiting first (what `PspTaskView.due` answers)."""
        now = self.clock()
        due = [task for task in self.tasks() if not task.done and not task.dead
               and datetime.fromisoformat(task.due_at) <= now]
        return [task.id for task in sorted(due, key=lambda task: datetime.fromisoformat(task.due_at))][:limit]

    def dead_letters(self) -> list[PspTask]:
        return [task for task in self.tasks() if task.dead]

    # What GoPay holds now

    def user(self, user_id: UUID) -> User:
        return self.app.get(user_id, User)

    def wallet(self, user: User) -> Wallet:
        return self.app.get(wallet_id(user), Wallet)

    def balance(self, user: User) -> int:
        return self.wallet(user).balance

    def order(self, order_id: UUID) -> PaymentOrder:
        return self.app.get(order_id, PaymentOrder)

    def events(self, aggregate_id: UUID) -> list[Any]:
        """The events stored for one aggregate, oldest first."""
        return list(self.app.events.get(aggregate_id))

    def event_types(self, aggregate_id: UUID) -> list[str]:
        return [type(event).__name__ for event in self.events(aggregate_id)]

    def all_events(self) -> Iterator[Any]:
        """Every event in the log, in commit order."""
        for notification in self.app.recorder.select_notifications(start=1, limit=10**9):
            yield self.app.mapper.to_domain_event(notification)

    def head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def check_books(self) -> Books:
        """Check the double entry over the whole log; what it holds, for further checks."""
        books = Books()
        wallets: set[UUID] = set()
        lines: dict[UUID, int] = defaultdict(int)
        for event in self.all_events():
            if isinstance(event, PaymentOrder.Succeeded | PaymentOrder.Reversed):
                entry = [Posting.from_record(record) for record in event.postings]
                totals: dict[str, int] = defaultdict(int)
                for posting in entry:
                    totals[posting.currency] += posting.amount
                    books.accounts[posting.account_id] += posting.amount
                assert not any(totals.values()), f"an unbalanced journal entry: {entry}"
            elif isinstance(event, Wallet.Opened):
                wallets.add(event.originator_id)
            elif isinstance(event, Wallet.Credited):
                lines[event.originator_id] += event.amount
            elif isinstance(event, Wallet.Debited | Wallet.Captured):
                lines[event.originator_id] -= event.amount
        for wallet_id in wallets:
            wallet = self.app.get(wallet_id, Wallet)
            assert wallet.balance == books.accounts.get(wallet_id, 0) == lines[wallet_id], (
                f"wallet {wallet_id}: balance {wallet.balance}, postings "
                f"{books.accounts.get(wallet_id, 0)}, lines {lines[wallet_id]}")
            assert 0 <= wallet.held <= wallet.balance
        for order in self.orders():
            if order.status == OrderStatus.SUCCEEDED:
                assert order.postings, f"order {order.id} succeeded without an entry"
            if order.status in (OrderStatus.CREATED, OrderStatus.PENDING, OrderStatus.FAILED):
                assert not order.postings, f"order {order.id} is {order.status} yet booked"
        return books

    def orders(self) -> list[PaymentOrder]:
        ids = {event.originator_id for event in self.all_events()
               if isinstance(event, PaymentOrder.Created)}
        return [self.order(order_id) for order_id in ids]


@dataclass
class Books:
    """Every account's balance, as the journal entries in the log add up."""

    accounts: defaultdict[UUID, int] = field(default_factory=lambda: defaultdict(int))

    def of(self, account: SystemAccount, currency: str = "USD") -> int:
        """The balance of one of GoPay's own accounts."""
        return self.accounts.get(account.account_id(currency), 0)

