"""Immutability by construction: every aggregate holds only values that cannot change in place.

Group commit works on shallow copies of aggregates (`gopay.group_commit._clone`) and undoes a
refused command by putting the copy it made before back. That is only safe if no event
handler ever changes a value in place: one `self.items.append(...)` would change the copy
kept for the rollback too, and the application's cached aggregate the copies share it with,
so a refused command would leave its change behind, in the rest of the batch and in every
later read, with no event to explain it. So every attribute of every aggregate
must be deeply immutable, after every event it can record, whether the event was just
triggered or read back from the event store. This test drives each aggregate class through
a story that records each of its events and checks exactly that.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from types import MappingProxyType
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import Aggregate, CanInitAggregate, CanMutateAggregate, event

import gopay.aggregates
from gopay.aggregates.adjustment_proposal import AdjustmentProposal
from gopay.aggregates.api_key import ApiKey
from gopay.aggregates.biller import Biller
from gopay.aggregates.cash_out import CashOut, CashOutSlot, CashOutStatus, CodeEntry
from gopay.aggregates.device import DeviceStatus
from gopay.aggregates.dispute import Dispute, DisputeKind
from gopay.aggregates.dispute import Outcome as DisputeOutcome
from gopay.aggregates.fraud import Activity, FraudRules, Outcome, Review, RuleSet, Verdict
from gopay.aggregates.ledger import Posting, SystemAccount, TransactionType
from gopay.aggregates.limits import DEFAULT_LIMITS
from gopay.aggregates.mobile_operator import MobileOperator
from gopay.aggregates.money import Money
from gopay.aggregates.notification_preferences import NotificationPreferences
from gopay.aggregates.payment_method import PaymentMethod, SavedMethods
from gopay.aggregates.payment_order import PaymentOrder
from gopay.aggregates.payment_request import PaymentRequest
from gopay.aggregates.payout_schedule import PayoutSchedule
from gopay.aggregates.psp_task import PspTask, TaskKind
from gopay.aggregates.qr_code import QrCode
from gopay.aggregates.reconciliation import ReconciliationRun
from gopay.aggregates.refunds import PaymentRefunds
from gopay.aggregates.session import Session, token_digest
from gopay.aggregates.support_ticket import SupportTicket
from gopay.aggregates.user import Device, EmailIndex, PhoneIndex, User
from gopay.aggregates.wallet import Hold, Wallet
from gopay.aggregates.webhook_endpoint import WebhookEndpoint
from gopay.application import GoPay

# The library's own bookkeeping: `_pending_events` is a list on purpose (the unit of work
# gives each copy its own), the rest are immutable values the library sets itself.
BOOKKEEPING = frozenset({"_id", "_version", "_created_on", "_modified_on", "_pending_events"})

IMMUTABLE_SCALARS = (type(None), bool, int, float, complex, str, bytes, UUID, date, datetime,
                     time, timedelta, Decimal)


def mutable_parts(value: Any, path: str) -> list[str]:  # noqa: PLR0911 - one answer per kind of value
    """Where in `value` something could be changed in place, as `path: type` lines."""
    if isinstance(value, IMMUTABLE_SCALARS):
        return []
    if isinstance(value, Enum):
        return mutable_parts(value.value, f"{path}.value")
    if isinstance(value, tuple | frozenset):
        return [part for n, item in enumerate(value) for part in mutable_parts(item, f"{path}[{n}]")]
    if isinstance(value, MappingProxyType):
        return [part for key, item in value.items()
                for part in (*mutable_parts(key, f"{path} key {key!r}"),
                             *mutable_parts(item, f"{path}[{key!r}]"))]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if not type(value).__dataclass_params__.frozen:  # type: ignore[attr-defined]  # set by @dataclass
            return [f"{path}: {type(value).__name__}, a dataclass that is not frozen"]
        return [part for field in dataclasses.fields(value)
                for part in mutable_parts(getattr(value, field.name), f"{path}.{field.name}")]
    return [f"{path}: {type(value).__name__}"]


def mutable_attributes(aggregate: Aggregate) -> list[str]:
    """Every attribute of `aggregate` (the library's bookkeeping aside) that is not deeply immutable."""
    name = type(aggregate).__name__
    return [part for attribute, value in vars(aggregate).items() if attribute not in BOOKKEEPING
            for part in mutable_parts(value, f"{name}.{attribute}")]


# What an aggregate class can record

def aggregate_classes() -> list[type[Aggregate]]:
    """Every aggregate class defined in a module of the `gopay.aggregates` package."""
    found = []
    for module_info in pkgutil.iter_modules(gopay.aggregates.__path__):
        module = importlib.import_module(f"{gopay.aggregates.__name__}.{module_info.name}")
        found += [value for value in vars(module).values()
                  if isinstance(value, type) and issubclass(value, Aggregate)
                  and value.__module__ == module.__name__]
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def recordable_events(cls: type[Aggregate]) -> set[type[Any]]:
    """The event classes of `cls`, without the bases the library defines for every aggregate."""
    events = {value for value in vars(cls).values()
              if isinstance(value, type) and issubclass(value, CanMutateAggregate)}
    events.discard(cls.Event)
    if len([e for e in events if issubclass(e, CanInitAggregate)]) > 1:
        events.discard(cls.Created)  # the library's default, replaced by a named creation event
    return events


# The stories: each yields an aggregate after every command, until every event was recorded.

Story = Callable[[], Iterator[Aggregate]]
TODAY = date(2026, 3, 13)
NOW = "2026-03-13T09:26:40+00:00"


def user_story() -> Iterator[Aggregate]:
    ada = User(id=uuid4(), email="ada@example.com", password_hash="$argon2id$one",
               kind="person", role=None, full_name="Ada", phone="+442071234567", country="GB",
               business_name=None, category=None, wallet_id=uuid4())
    yield ada
    ada.change_profile(full_name="Ada King", phone=None, login_notifications=False)
    yield ada
    ada.rehash_password("$argon2id$two")
    yield ada
    for device in ("phone", "phone", None):
        ada.logged_in(session_id=uuid4(), device_id=device, address="203.0.113.7", at=NOW)
        yield ada
    ada.login_failed(reason="password", device_id="phone", address="203.0.113.7")
    yield ada
    ada.lock_device("phone", wipe=True)
    yield ada
    ada.reenroll_device("phone")
    yield ada
    ada.request_recovery(token_digest="digest", expires_at="2026-03-13T10:00:00+00:00")
    yield ada
    ada.recover("digest", "$argon2id$three", NOW)
    yield ada
    ada.set_up_totp("JBSWY3DPEHPK3PXP")
    yield ada
    ada.enable_totp(100, ("r1", "r2", "r3"))
    yield ada
    ada.use_otp(101)
    yield ada
    ada.use_recovery_code("r2")
    yield ada
    ada.renew_recovery_codes(("r4", "r5"))
    yield ada
    ada.disable_totp()
    yield ada
    ada.submit_kyc("passport", "X1234567", "1990-12-10")
    yield ada
    ada.decide_kyc("approve", by=uuid4(), reason="documents checked")
    yield ada
    staff = User(id=uuid4(), email="sam@gopay.example", password_hash="$argon2id$one",
                 kind="staff", role="support", full_name="Sam", phone=None, country=None,
                 business_name=None, category=None, wallet_id=None)
    yield staff
    staff.change_role("finance", by=uuid4())
    yield staff


def email_index_story() -> Iterator[Aggregate]:
    yield EmailIndex(id=EmailIndex.id_for("ada@example.com"), user_id=uuid4())


def phone_index_story() -> Iterator[Aggregate]:
    index = PhoneIndex(id=PhoneIndex.id_for("+442071234567"), user_id=uuid4())
    yield index
    index.release()
    yield index
    index.claim(uuid4())
    yield index


def session_story() -> Iterator[Aggregate]:
    session = Session(id=uuid4(), user_id=uuid4(), device_id="phone",
                      refresh_digest=token_digest("first"))
    yield session
    session.rotate("first", token_digest("second"))
    yield session
    session.revoke(reason="logout")
    yield session


def device_status_story() -> Iterator[Aggregate]:
    device = DeviceStatus(id=DeviceStatus.id_for("phone"))
    yield device
    someone, someone_else = uuid4(), uuid4()
    device.lock(someone, wipe=False)
    yield device
    device.lock(someone_else, wipe=True)
    yield device
    device.unlock(someone)
    yield device


def usd(amount: int) -> Money:
    return Money(amount, "USD")


def wallet_story() -> Iterator[Aggregate]:
    wallet = Wallet(owner_id=uuid4(), currency="USD")
    yield wallet
    line: dict[str, Any] = {"entry_type": TransactionType.TRANSFER, "counterparty": "someone",
                            "reference": "x"}
    wallet.credit(usd(10_000), entry_id=uuid4(), **line)
    yield wallet
    wallet.debit(usd(1_000), entry_id=uuid4(), on=TODAY, limits=DEFAULT_LIMITS["unverified"],
                 **line)
    yield wallet
    made_at = datetime(2026, 3, 13, 9, 26, 40, tzinfo=UTC)
    wallet.debit(usd(1_000), entry_id=uuid4(), on=TODAY, made_at=made_at, device="phone", **line)
    yield wallet
    wallet.pay_fee(usd(25), entry_id=uuid4(), reference="x")
    yield wallet
    paid, cancelled = uuid4(), uuid4()
    for hold_id in (paid, cancelled):
        wallet.hold(usd(2_000), hold_id=hold_id, entry_type=TransactionType.PAYOUT, on=TODAY,
                    counterparty="payout_clearing", made_at=made_at, device="phone")
        yield wallet
    wallet.capture(usd(1_500), hold_id=paid, entry_type=TransactionType.PAYOUT,
                   counterparty="payout_clearing", reference="to the bank")
    yield wallet
    wallet.release(hold_id=paid)
    yield wallet
    wallet.capture(usd(2_000), hold_id=cancelled, entry_type=TransactionType.PAYOUT,
                   counterparty="payout_clearing", reference="to the bank")
    yield wallet
    wallet.hold_back(usd(1_000_000), hold_id=uuid4(), entry_type=TransactionType.REFUND)
    yield wallet
    wallet.freeze(by=uuid4(), reason="fraud")
    yield wallet
    wallet.unfreeze(by=uuid4(), reason="cleared")
    yield wallet
    wallet.change_tier("verified", by=uuid4())
    yield wallet


def payment_order_story() -> Iterator[Aggregate]:
    payer, payee = uuid4(), uuid4()

    def order() -> PaymentOrder:
        return PaymentOrder(id=uuid4(), order_type=TransactionType.TRANSFER, initiated_by=uuid4(),
                            payer_wallet_id=payer, payee_wallet_id=payee, amount=1_000,
                            currency="USD", note="lunch", request_fingerprint="f")

    entry = (Posting(payer, -1_000, "USD"), Posting(payee, 1_000, "USD"))
    paid = order()
    yield paid
    paid.mark_pending(psp_reference="psp_123")
    yield paid
    paid.succeed(*entry)
    yield paid
    paid.reverse(reason="chargeback")
    yield paid
    held = order()
    held.plan(Posting(payer, -1_000, "USD"),
              Posting(SystemAccount.PAYOUT_CLEARING.account_id("USD"), 1_000, "USD"))
    yield held
    held.note_psp_reference("po_123")
    yield held
    held.succeed()
    yield held
    refused = order()
    refused.fail(reason="insufficient_funds", detail="not enough money in the wallet")
    yield refused


def payment_method_story() -> Iterator[Aggregate]:
    method = PaymentMethod(id=uuid4(), owner_id=uuid4(), method_type="card",
                           details={"brand": "visa", "last4": "4242", "exp_month": 12,
                                    "exp_year": 2029},
                           holder_name="Ada Lovelace", fingerprint="fp", request_digest=None)
    yield method
    method.remove()
    yield method


def saved_methods_story() -> Iterator[Aggregate]:
    owner = uuid4()
    saved = SavedMethods(id=SavedMethods.id_for(owner), owner_id=owner)
    yield saved
    first, second = uuid4(), uuid4()
    saved.add(first, "fp1")
    yield saved
    saved.add(second, "fp2")
    yield saved
    saved.remove(first)
    yield saved


def psp_task_story() -> Iterator[Aggregate]:
    order_id = uuid4()
    call = PspTask(id=PspTask.id_for_call(order_id), kind=TaskKind.CALL, operation="charge",
                   order_id=order_id, payload={"payment_method_id": str(uuid4())},
                   due_at=NOW)
    yield call
    call.attempt_failed("timeout", retry_at=NOW)
    yield call
    call.postpone(NOW, "pending at the PSP")
    yield call
    call.attempt_failed("timeout", retry_at=None)
    yield call
    call.requeue(by=uuid4(), at=NOW)
    yield call
    call.complete("succeeded")
    yield call


def qr_code_story() -> Iterator[Aggregate]:
    code = QrCode(id=uuid4(), merchant_id=uuid4(), wallet_id=uuid4(), amount=1_250,
                  currency="USD", reference="order 17", expires_at=NOW, request_fingerprint="f")
    yield code
    code.pay(payment_id=uuid4(), payer_wallet_id=uuid4())
    yield code


def payment_refunds_story() -> Iterator[Aggregate]:
    refunds = PaymentRefunds.open(payment_id=uuid4(), merchant_wallet_id=uuid4(),
                                  payer_wallet_id=uuid4(), paid=usd(1_000))
    yield refunds
    refunds.refund(usd(300), refund_id=uuid4())
    yield refunds
    dispute_id = uuid4()
    refunds.dispute(usd(500), dispute_id=dispute_id)
    yield refunds
    refunds.drop_dispute(dispute_id=dispute_id, amount=500)
    yield refunds


def dispute_story() -> Iterator[Aggregate]:
    for outcome in DisputeOutcome:
        dispute = Dispute.open(kind=DisputeKind.PAYMENT, payment_id=uuid4(), order_id=uuid4(),
                               customer_wallet_id=uuid4(), merchant_wallet_id=uuid4(),
                               opened_by=uuid4(), amount=1_000, currency="USD", covered=600,
                               reason="never delivered")
        yield dispute
        dispute.add_evidence("it was delivered", by=uuid4(), at=NOW)
        yield dispute
        dispute.decide(outcome, by=uuid4())
        yield dispute


def api_key_story() -> Iterator[Aggregate]:
    key = ApiKey(id=uuid4(), owner_id=uuid4(), wallet_id=uuid4(), name="shop server",
                 prefix="sk_live_", last4="abcd", digest="0" * 64, request_fingerprint="f")
    yield key
    key.revoke(by=key.owner_id)
    yield key


def webhook_endpoint_story() -> Iterator[Aggregate]:
    endpoint = WebhookEndpoint(id=uuid4(), owner_id=uuid4(), wallet_id=uuid4(),
                               url="https://shop.example/hooks",
                               events=("payment.succeeded", "refund.succeeded"),
                               request_fingerprint="f")
    yield endpoint
    endpoint.remove(by=endpoint.owner_id)
    yield endpoint


def biller_story() -> Iterator[Aggregate]:
    biller = Biller(id=uuid4(), name="City Power", category="electricity", currency="USD",
                    wallet_id=uuid4(), created_by=uuid4(), request_fingerprint="f")
    yield biller
    biller.set_bank_account(uuid4(), "DE ...3000", by=uuid4())
    yield biller


def mobile_operator_story() -> Iterator[Aggregate]:
    yield MobileOperator(id=uuid4(), name="Telco", country="US", currency="USD",
                         wallet_id=uuid4(), created_by=uuid4(), request_fingerprint="f")


def cash_out_story() -> Iterator[Aggregate]:
    def cash_out() -> CashOut:
        order_id = uuid4()
        return CashOut(id=CashOut.id_for(order_id), order_id=order_id, customer_id=uuid4(),
                       customer_wallet_id=uuid4(), agent_id=uuid4(), agent_wallet_id=uuid4(),
                       amount=5_000, currency="USD", slot=42, code_digest="digest",
                       expires_at=NOW, attempts_allowed=3)

    paid = cash_out()
    yield paid
    paid.enter_wrong_code()
    yield paid
    paid.confirm(by=uuid4())
    yield paid
    expired = cash_out()
    expired.end(CashOutStatus.EXPIRED, reason="expired")
    yield expired


def cash_out_slot_story() -> Iterator[Aggregate]:
    slot = CashOutSlot(id=CashOutSlot.id_for(uuid4(), 42), order_id=uuid4())
    yield slot
    slot.take(uuid4())
    yield slot


def code_entry_story() -> Iterator[Aggregate]:
    yield CodeEntry(id=uuid4(), fingerprint="fp", order_id=uuid4(), refusal="wrong_code",
                    detail="wrong code: 2 tries left", attempts_left=2)


def activity_story() -> Iterator[Aggregate]:
    now = datetime(2026, 3, 13, 9, 26, 40, tzinfo=UTC)
    activity = Activity(id=uuid4(), subject="wallet/x")
    yield activity
    for outcome in (Outcome.ALLOW, Outcome.HOLD, Outcome.REFUSE):
        activity.screened(order_id=uuid4(), at=now, amount=100, recipient="r", device="phone",
                          verdict=Verdict(outcome, 10, ("why",), ("rule",)))
        yield activity


def fraud_rules_story() -> Iterator[Aggregate]:
    rules = FraudRules(id=uuid4())
    yield rules
    rules.change(RuleSet(blocked_counterparties=("a@example.com",)), by=uuid4())
    yield rules


def review_story() -> Iterator[Aggregate]:
    for decide in ("approve", "reject"):
        review = Review(id=uuid4(), order_id=uuid4(), sender_wallet_id=uuid4(), amount=1,
                        currency="USD", score=60, reasons=("too fast",),
                        sender_activity={"payments_last_hour": 3})
        yield review
        getattr(review, decide)(by=uuid4(), note="checked")
        yield review


def payment_request_story() -> Iterator[Aggregate]:
    now = datetime(2026, 3, 13, 9, 26, 40, tzinfo=UTC)

    def request() -> PaymentRequest:
        return PaymentRequest(id=uuid4(), requester_id=uuid4(), requester_wallet_id=uuid4(),
                              payer_id=uuid4(), payer_wallet_id=uuid4(), amount=1_000,
                              currency="USD", note="dinner", expires_at="2026-03-20T09:26:40+00:00",
                              request_fingerprint="f")

    for answer in ("pay", "decline", "cancel", "expire"):
        answered = request()
        yield answered
        if answer == "pay":
            answered.pay(order_id=uuid4(), now=now)
        elif answer == "expire":
            answered.expire(now=now + timedelta(days=8))
        else:
            getattr(answered, answer)(now=now)
        yield answered


def support_ticket_story() -> Iterator[Aggregate]:
    customer, staff = uuid4(), uuid4()
    ticket = SupportTicket.open(id=uuid4(), customer_id=customer, customer_wallet_id=uuid4(),
                                subject="Card declined", message_id=uuid4(), body="Why?",
                                transaction_id=uuid4())
    yield ticket
    ticket.reply(message_id=uuid4(), staff_id=staff, body="Which card?")
    yield ticket
    ticket.write(message_id=uuid4(), body="The Visa")
    yield ticket
    ticket.assign(staff_id=staff, by=uuid4())
    yield ticket
    ticket.close(by=staff)
    yield ticket


def reconciliation_run_story() -> Iterator[Aggregate]:
    first, second = uuid4(), uuid4()
    run = ReconciliationRun(id=uuid4(), file_sha256="ab" * 32, file_name="2026-03-12.csv",
                            requested_days=["2026-03-12"], source="upload", started_by=uuid4(),
                            attempt=first, at=NOW)
    yield run
    item = {"kind": "missing_in_psp", "cause": "no line", "order_ids": [str(uuid4())],
            "expected": {"amount": 100}, "actual": None, "difference": None}
    run.record_items(attempt=first, first=0, items=[item], at=NOW)
    yield run
    run.restart(attempt=second, by=None, at=NOW)
    yield run
    run.record_items(attempt=second, first=0, items=[item, item], at=NOW)
    yield run
    run.finish(attempt=second, period=["2026-03-12"], lines=5, at=NOW,
               report={"hours": {"2026-03-12": [[1, 2]] * 24}},
               summary={"matched": 3, "missing_in_ledger": 0, "missing_in_psp": 2,
                        "amount_mismatch": 0, "status_mismatch": 0, "fee_mismatch": 0,
                        "duplicates": 0})
    yield run
    run.post_to_suspense(seq=1, order_id=uuid4(), by=uuid4())
    yield run
    unreadable = ReconciliationRun(id=uuid4(), file_sha256="cd" * 32, file_name="bad.csv",
                                   requested_days=[], source="cli", started_by=None,
                                   attempt=first, at=NOW)
    unreadable.abandon(attempt=first, reason="line 7: amount must be an integer", at=NOW)
    yield unreadable


def notification_preferences_story() -> Iterator[Aggregate]:
    user_id = uuid4()
    preferences = NotificationPreferences(id=NotificationPreferences.id_for(user_id), user_id=user_id)
    yield preferences
    preferences.change({"transfer.received": {"email": False}})
    yield preferences


def adjustment_proposal_story() -> Iterator[Aggregate]:
    def proposal() -> AdjustmentProposal:
        return AdjustmentProposal(id=uuid4(), account="suspense", counter_account="adjustments",
                                  direction="debit", amount=500, currency="USD",
                                  reason="written off", proposed_by=uuid4(),
                                  request_fingerprint="f")

    applied = proposal()
    yield applied
    applied.apply(by=uuid4(), order_id=uuid4())
    yield applied
    rejected = proposal()
    rejected.reject(by=uuid4(), reason="not ours")
    yield rejected


def payout_schedule_story() -> Iterator[Aggregate]:
    merchant = uuid4()
    schedule = PayoutSchedule(id=PayoutSchedule.id_for(merchant), merchant_id=merchant,
                              wallet_id=uuid4())
    yield schedule
    schedule.set(frequency="weekly", weekday="friday", minimum=usd(1_000),
                 payment_method_id=uuid4(), bank_account_shown="DE ...3000",
                 today=date(2026, 3, 13), by=merchant)
    yield schedule
    schedule.start_payout(period="2026-W11", order_id=uuid4(), money=usd(5_000),
                          today=date(2026, 3, 13))
    yield schedule
    schedule.stop(by=merchant)
    yield schedule


STORIES: dict[type[Aggregate], Story] = {
    User: user_story,
    EmailIndex: email_index_story,
    PhoneIndex: phone_index_story,
    Session: session_story,
    DeviceStatus: device_status_story,
    Wallet: wallet_story,
    PaymentOrder: payment_order_story,
    PaymentMethod: payment_method_story,
    SavedMethods: saved_methods_story,
    PspTask: psp_task_story,
    QrCode: qr_code_story,
    PaymentRefunds: payment_refunds_story,
    Dispute: dispute_story,
    ApiKey: api_key_story,
    WebhookEndpoint: webhook_endpoint_story,
    Biller: biller_story,
    MobileOperator: mobile_operator_story,
    CashOut: cash_out_story,
    CashOutSlot: cash_out_slot_story,
    CodeEntry: code_entry_story,
    PaymentRequest: payment_request_story,
    SupportTicket: support_ticket_story,
    Activity: activity_story,
    FraudRules: fraud_rules_story,
    Review: review_story,
    ReconciliationRun: reconciliation_run_story,
    AdjustmentProposal: adjustment_proposal_story,
    NotificationPreferences: notification_preferences_story,
    PayoutSchedule: payout_schedule_story,
}


def told(story: Story) -> tuple[list[str], set[type[Any]]]:
    """What was found mutable while telling `story`, and which events it recorded.

    Each aggregate is checked after every command as the command left it, then read back
    from an event store (through GoPay's own mapper) at each of its versions, since a value
    can come back from storage in another type than the one the command passed in.
    """
    problems: list[str] = []
    recorded: dict[UUID, list[Any]] = {}
    for aggregate in story():
        problems += [f"after {type(aggregate).__name__} v{aggregate.version}: {part}"
                     for part in mutable_attributes(aggregate)]
        recorded.setdefault(aggregate.id, []).extend(aggregate.collect_events())
    store = GoPay.in_memory()
    for aggregate_id, events in recorded.items():
        store.events.put(events)
        for version in range(1, len(events) + 1):
            stored: Aggregate = store.repository.get(aggregate_id, version=version)
            problems += [f"read back at v{version}: {part}" for part in mutable_attributes(stored)]
    return problems, {type(e) for events in recorded.values() for e in events}


class TestEveryAggregateIsImmutable:
    @pytest.mark.parametrize("cls", aggregate_classes(), ids=lambda cls: cls.__qualname__)
    def test_after_every_event_every_attribute_is_deeply_immutable(self, cls: type[Aggregate]) -> None:
        """No event handler of any aggregate leaves a value that could be changed in place."""
        story = STORIES.get(cls)
        assert story is not None, (
            f"{cls.__module__}.{cls.__qualname__} has no story: add one to STORIES in "
            "tests/unit/test_immutability.py that records each of its events, so that its "
            "attributes are checked for immutability")
        problems, recorded = told(story)
        assert problems == [], "group commit's shallow copies rely on immutable attributes"
        missing = sorted(e.__qualname__ for e in recordable_events(cls) - recorded)
        assert missing == [], (
            f"the story of {cls.__qualname__} never records {missing}: extend it so every "
            "event's handler is checked")

    def test_every_story_is_of_an_aggregate_of_the_package(self) -> None:
        """A story left behind by a removed aggregate class is noticed too."""
        assert set(STORIES) <= set(aggregate_classes())


class Basket(Aggregate):
    """What this test must catch: a list attribute changed in place by an event handler."""

    @event("Started")
    def __init__(self) -> None:
        self.items: list[str] = []

    @event("ItemAdded")
    def add(self, item: str) -> None:
        self.items.append(item)


class Ledger(Aggregate):
    """Subtler: a tuple, but of something mutable, added to in place."""

    @event("Opened")
    def __init__(self) -> None:
        self.pages: tuple[dict[str, int], ...] = ({},)

    @event("Written")
    def write(self, line: str) -> None:
        self.pages[-1][line] = len(self.pages[-1])


class TestTheCheckerCanFail:
    def test_a_handler_appending_to_a_list_is_caught(self) -> None:
        def story() -> Iterator[Aggregate]:
            basket = Basket()
            yield basket
            basket.add("tea")
            yield basket

        problems, recorded = told(story)
        assert "after Basket v2: Basket.items: list" in problems
        assert "read back at v2: Basket.items: list" in problems
        assert {e.__qualname__ for e in recorded} == {"Basket.Started", "Basket.ItemAdded"}

    def test_a_mutable_value_inside_a_tuple_is_caught(self) -> None:
        def story() -> Iterator[Aggregate]:
            ledger = Ledger()
            ledger.write("rent")
            yield ledger

        problems, _ = told(story)
        assert "after Ledger v2: Ledger.pages[0]: dict" in problems

    @pytest.mark.parametrize("value", [
        [], {}, set(), bytearray(b"x"), (1, [2]), frozenset({(1, object())}),
        MappingProxyType({"a": []}), MappingProxyType({"a": MappingProxyType({"b": {1}})}),
        Device(enrolled_at=NOW, last_login_at=NOW, sessions=([],)),  # type: ignore[arg-type]  # on purpose
        dataclasses.make_dataclass("Loose", [("x", int)])(1), object(),
    ], ids=repr)
    def test_mutable_values_are_found(self, value: Any) -> None:
        assert mutable_parts(value, "value") != []

    @pytest.mark.parametrize("value", [
        None, True, 1, 1.5, "text", b"bytes", uuid4(), TODAY, datetime(2026, 3, 13, tzinfo=UTC),
        Decimal("1.10"), TransactionType.FEE, (1, ("a", frozenset({2}))), MappingProxyType({"a": (1, 2)}),
        Money(100, "USD"), Posting(uuid4(), -5, "USD"), Hold(100, "payout", None, 100),
        Device(enrolled_at=NOW, last_login_at=NOW, sessions=(uuid4(),)),
    ], ids=repr)
    def test_immutable_values_pass(self, value: Any) -> None:
        assert mutable_parts(value, "value") == []
