"""Notifications: each event a person should hear of becomes one notice per channel they keep on."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from aiosmtpd.controller import Controller
from tenacity import stop_after_attempt, wait_fixed

from gopay.aggregates.errors import ValidationFailed
from gopay.aggregates.fraud import Review, RuleSet, Velocity
from gopay.aggregates.instruments import bank_account, card
from gopay.aggregates.money import Money
from gopay.commands.fraud_reviews import ApproveReview, ChangeFraudRules, RejectReview
from gopay.commands.kyc import DecideKyc, SubmitKyc
from gopay.commands.notification_preferences import ChangeNotificationPreferences
from gopay.commands.payment_methods import AddPaymentMethod
from gopay.commands.payment_requests import RequestPayment
from gopay.commands.payouts import RequestPayout
from gopay.commands.psp_outcomes import SettleWithPsp
from gopay.commands.recovery import ConfirmRecovery, RequestRecovery
from gopay.commands.sign_in import SignIn
from gopay.commands.topups import RequestTopUp
from gopay.commands.transfer import Transfer
from gopay.notifications.outbox import Outbox
from gopay.projections.read_side import ReadSide
from gopay.psp.port import OperationStatus
from gopay.retry import RetryPolicy
from gopay.system import System
from tests.support import ADMIN, Mailbox, free_port, open_wallets, transfer

STAFF_ID = uuid4()


def notices(database_url: str, user_id: UUID) -> list[dict[str, Any]]:
    """Every notice of a user with its outbox rows: (type, in_app, e-mails queued)."""
    with psycopg.connect(database_url, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(
            "SELECT n.type, n.in_app, (SELECT count(*) FROM outbox o WHERE o.notification_id = n.id)"
            " AS emails FROM user_notifications n WHERE n.user_id = %s ORDER BY n.seq",
            (user_id,)).fetchall()


def told(system: System, database_url: str, user_id: UUID, kind: str) -> list[dict[str, Any]]:
    system.read_side.catch_up()
    return [n for n in notices(database_url, user_id) if n["type"] == kind]


def once_by_both(found: list[dict[str, Any]]) -> None:
    assert [(n["in_app"], n["emails"]) for n in found] == [(True, 1)]


@pytest.fixture
def people(system: System) -> list[Any]:
    return open_wallets(system.commands, 2, 100_000)


def settle(system: System, order_id: UUID, status: OperationStatus, reason: str | None = None) -> None:
    system.commands.run(SettleWithPsp(order_id=order_id, status=status, psp_reference="psp_1",
                                      failure_reason=reason))


def method(system: System, owner: Any, instrument: Any) -> UUID:
    return system.commands.run(AddPaymentMethod(owner_id=owner.id, instrument=instrument)).value.id


def a_card() -> Any:
    return card("4242424242424242", 12, 2031, "123", "Ada Lovelace", today=datetime.now(UTC).date())


class TestEachTypeIsToldOncePerChannel:
    def test_transfer_received(self, system: System, database_url: str, people: list[Any]) -> None:
        """The recipient is told, by both channels, once; the sender is not told."""
        sender, recipient = people
        transfer(system.commands, sender, recipient, 1234, note="lunch")
        once_by_both(told(system, database_url, recipient.id, "transfer.received"))
        assert told(system, database_url, sender.id, "transfer.received") == []

    @pytest.mark.parametrize(("status", "kind"), [(OperationStatus.SUCCEEDED, "topup.succeeded"),
                                                  (OperationStatus.FAILED, "topup.failed")])
    def test_topup_outcome(self, system: System, database_url: str, people: list[Any],
                           status: OperationStatus, kind: str) -> None:
        """The PSP's answer to a top-up is news, whichever it is."""
        owner = people[0]
        order = system.commands.run(RequestTopUp(
            caller_id=owner.id, wallet_id=owner.wallet_id, payment_method_id=method(system, owner, a_card()),
            money=Money(500, "USD"), idempotency_key="t1")).value
        settle(system, order.id, status, None if status == OperationStatus.SUCCEEDED else "card_declined")
        once_by_both(told(system, database_url, owner.id, kind))

    @pytest.mark.parametrize(("status", "kind"), [(OperationStatus.SUCCEEDED, "payout.paid"),
                                                  (OperationStatus.FAILED, "payout.failed")])
    def test_payout_outcome(self, system: System, database_url: str, people: list[Any],
                            status: OperationStatus, kind: str) -> None:
        owner = people[0]
        bank = method(system, owner, bank_account("DE89370400440532013000", "Ada Lovelace"))
        order = system.commands.run(RequestPayout(
            caller_id=owner.id, wallet_id=owner.wallet_id, payment_method_id=bank,
            money=Money(700, "USD"), idempotency_key="p1")).value
        settle(system, order.id, status, None if status == OperationStatus.SUCCEEDED else "account_closed")
        once_by_both(told(system, database_url, owner.id, kind))

    def test_a_payout_refused_at_once_is_not_news(self, system: System, database_url: str,
                                                  people: list[Any]) -> None:
        """Not enough money is the request's own answer (422), not a notice."""
        owner = people[0]
        bank = method(system, owner, bank_account("DE89370400440532013000", "Ada Lovelace"))
        with pytest.raises(Exception, match="not enough money"):
            system.commands.run(RequestPayout(caller_id=owner.id, wallet_id=owner.wallet_id,
                                              payment_method_id=bank, money=Money(10**9, "USD")))
        assert told(system, database_url, owner.id, "payout.failed") == []

    def test_payment_request_received(self, system: System, database_url: str,
                                      people: list[Any]) -> None:
        requester, payer = people
        system.commands.run(RequestPayment(requester_id=requester.id,
                                           requester_wallet_id=requester.wallet_id,
                                           payer=payer.email, money=Money(900, "USD")))
        once_by_both(told(system, database_url, payer.id, "payment_request.received"))

    def test_login_new_device(self, system: System, database_url: str, people: list[Any]) -> None:
        """The first device is the account's own; a second one is news, only the first time."""
        person = people[0]
        for device in ("phone", "phone", "tablet", "tablet"):
            system.commands.run(SignIn(email=person.email, password="x" * 12, device_id=device))
        once_by_both(told(system, database_url, person.id, "login.new_device"))

    def test_kyc_decided(self, system: System, database_url: str, people: list[Any]) -> None:
        person = people[0]
        system.read_side.catch_up()
        [admin] = system.read_side.directory.search(ADMIN.email, kinds=("staff",), limit=1)
        staff_id = admin["id"]
        system.commands.run(SubmitKyc(user_id=person.id, document_type="passport",
                                      document_number="X1234567", date_of_birth=date(1990, 1, 1)))
        system.commands.run(DecideKyc(staff_id=staff_id, user_id=person.id, decision="approve"))
        once_by_both(told(system, database_url, person.id, "kyc.decided"))

    @pytest.mark.parametrize("decision", ["approve", "reject"])
    def test_review_decided(self, system: System, database_url: str, people: list[Any],
                            decision: str) -> None:
        """A payment held for review: its sender is told the decision, once, with the payment."""
        sender, recipient = people
        system.commands.run(ChangeFraudRules(staff_id=STAFF_ID, document=RuleSet(
            sender_velocity=Velocity(3600, 0, 10**12, 60)).as_document()))
        order = system.commands.run(Transfer(
            caller_id=sender.id, sender_wallet_id=sender.wallet_id, recipient=recipient.email,
            money=Money(700, "USD"), fingerprint="f")).value
        decide = ApproveReview if decision == "approve" else RejectReview
        system.commands.run(decide(review_id=Review.id_for(order.id), staff_id=STAFF_ID))
        once_by_both(told(system, database_url, sender.id, "review.decided"))
        with psycopg.connect(database_url) as conn:
            [(data,)] = conn.execute("SELECT data FROM user_notifications WHERE user_id = %s AND "
                                     "type = 'review.decided'", (sender.id,)).fetchall()
        assert (data["decision"], data["payment_id"], data["amount"]) == (decision, str(order.id), 700)
        assert told(system, database_url, recipient.id, "review.decided") == []

    def test_password_changed(self, system: System, database_url: str, people: list[Any]) -> None:
        person = people[0]
        system.commands.run(RequestRecovery(email=person.email))
        body = next(m.body for m in system.outbox.messages_for(person.id) if m.notification_id is None)
        token = next(word for word in body.split() if word.startswith(str(person.id)))
        system.commands.run(ConfirmRecovery(token=token, new_password="a brand new passphrase"))
        once_by_both(told(system, database_url, person.id, "security.password_changed"))


class TestPreferences:
    def test_a_channel_turned_off_is_not_used(self, system: System, database_url: str,
                                              people: list[Any]) -> None:
        sender, recipient = people
        system.commands.run(ChangeNotificationPreferences(
            user_id=recipient.id, preferences={"transfer.received": {"email": False}}))
        transfer(system.commands, sender, recipient, 100)
        assert [(n["in_app"], n["emails"]) for n in
                told(system, database_url, recipient.id, "transfer.received")] == [(True, 0)]
        system.commands.run(ChangeNotificationPreferences(
            user_id=recipient.id, preferences={"transfer.received": {"in_app": False}}))
        transfer(system.commands, sender, recipient, 100)
        assert len(told(system, database_url, recipient.id, "transfer.received")) == 1

    def test_security_notices_cannot_be_turned_off(self, system: System, people: list[Any]) -> None:
        with pytest.raises(ValidationFailed, match="security notice"):
            system.commands.run(ChangeNotificationPreferences(
                user_id=people[0].id, preferences={"login.new_device": {"email": False}}))


class TestExactlyOnce:
    def test_a_second_runner_and_a_replay_tell_no_one_twice(self, system: System, settings: Any,
                                                            database_url: str,
                                                            people: list[Any]) -> None:
        """Another process's runner, and the view rebuilt from event zero, add nothing."""
        sender, recipient = people
        for _ in range(3):
            transfer(system.commands, sender, recipient, 10)
        system.read_side.catch_up()
        before = notices(database_url, recipient.id)
        other = ReadSide(system.app, database_url)
        try:
            other.runner.projections[-1].view.rebuild()
            other.catch_up()
        finally:
            other.stop()
        system.read_side.catch_up()
        assert notices(database_url, recipient.id) == before
        assert [(n["in_app"], n["emails"]) for n in before] == [(True, 1)] * 3


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def mailbox(smtp_port: int) -> tuple[Mailbox, Controller]:
    box = Mailbox()
    return box, Controller(box, hostname="127.0.0.1", port=smtp_port)


class TestEmail:
    def test_an_email_waits_out_an_smtp_outage_and_goes_once(
            self, system: System, database_url: str, people: list[Any], smtp_port: int,
            mailbox: tuple[Mailbox, Controller]) -> None:
        """While the server is down the e-mail waits; then it arrives once, text and HTML."""
        box, controller = mailbox
        outbox = Outbox(system.app.stores.messages, system.app.data_keys,
                        f"smtp://127.0.0.1:{smtp_port}", "GoPay <no-reply@gopay.example>",
                        retry=RetryPolicy(wait=wait_fixed(0), stop=stop_after_attempt(50)))
        outbox.letters = system.read_side.notifications.letter
        sender, recipient = people
        transfer(system.commands, sender, recipient, 4321, note="rent")
        system.read_side.catch_up()
        assert outbox.deliver() == 0  # nobody listening
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT attempts, last_error FROM outbox WHERE notification_id "
                               "IS NOT NULL AND user_id = %s", (recipient.id,)).fetchone()
        assert row is not None and row[0] == 1 and row[1]
        controller.start()
        try:
            assert outbox.deliver() >= 1
            assert outbox.deliver() == 0
        finally:
            controller.stop()
        [email] = [m for m in box.messages if m["To"] == recipient.email]
        assert email["Subject"] == "GoPay: You received 43.21 USD"
        parts = {part.get_content_type(): part.get_payload(decode=True).decode()
                 for part in email.walk() if not part.is_multipart()}
        assert "rent" in parts["text/plain"] and "<h1" in parts["text/html"]
