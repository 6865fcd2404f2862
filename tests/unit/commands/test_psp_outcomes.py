"""What the PSP did, recorded once: answers, webhooks in any order and twice, chargebacks."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from gopay.aggregates.errors import InvalidState, NotFound, ValidationFailed
from gopay.aggregates.ledger import SystemAccount
from gopay.aggregates.money import Money
from gopay.aggregates.payment_method import PaymentMethod
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder, order_id_for
from gopay.aggregates.psp_task import PspTask, TaskKind
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.commands.psp_outcomes import (
    ChargeBack,
    CompleteTask,
    FailAttempt,
    ReceiveWebhook,
    RetryDeadLetter,
    SettleWithPsp,
)
from gopay.commands.staff import SetFrozen
from gopay.processes.psp import PspProcess
from gopay.psp.port import OperationStatus
from tests.fake_psp import FakePsp
from tests.unit.commands.in_memory import InMemoryGoPay, wallet_id


@pytest.fixture
def psp() -> FakePsp:
    return FakePsp()


@pytest.fixture
def process(gopay: InMemoryGoPay, psp: FakePsp) -> PspProcess:
    return gopay.psp_process(psp)


class Webhooks:
    """The PSP's callbacks as `POST /v1/psp/webhooks` takes them: kept as a task, then applied."""

    def __init__(self, gopay: InMemoryGoPay, process: PspProcess) -> None:
        self.gopay, self.process = gopay, process
        self.sent = 0

    def deliver(self, event_type: str, order: PaymentOrder | UUID | None, *,
                event_id: str | None = None, **data: Any) -> PspTask | None:
        """Deliver one event (a new one unless `event_id` repeats one); its task, if new."""
        self.sent += 1
        order_id = order.id if isinstance(order, PaymentOrder) else order
        amount = order.amount if isinstance(order, PaymentOrder) else 1_000
        payload = {"psp_reference": f"ch_{order_id}", "merchant_reference": str(order_id),
                   "amount": amount, "currency": "USD", "fee": 0, "failure_reason": None,
                   "created_at": self.gopay.clock().isoformat(), **data}
        task = self.gopay.run(ReceiveWebhook(event_id=event_id or f"evt_{self.sent}",
                                             event_type=event_type, order_id=order_id,
                                             data=payload))
        if task is not None:
            self.process.attempt(task.id)
        return task

    def dispute(self, topup: PaymentOrder, amount: int | None = None, *, fee: int = 0,
                reference: str = "dp_1", event_id: str | None = None) -> PspTask | None:
        return self.deliver("charge.disputed", topup, event_id=event_id, psp_reference=reference,
                            amount=topup.amount if amount is None else amount, fee=fee)


@pytest.fixture
def webhooks(gopay: InMemoryGoPay, process: PspProcess) -> Webhooks:
    return Webhooks(gopay, process)


def credited(gopay: InMemoryGoPay, user: User) -> list[int]:
    return [e.amount for e in gopay.events(wallet_id(user)) if isinstance(e, Wallet.Credited)]


def chargeback_of(topup: PaymentOrder, reference: str = "dp_1") -> UUID:
    """The order a dispute's reference makes of a chargeback (its idempotency key)."""
    return order_id_for(topup.id, ChargeBack.operation, reference)


class TestSettling:
    def test_pending_notes_the_psp_s_reference_and_asks_again_later(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod) -> None:
        """The order stays pending; the task that asked is put off until the recheck."""
        order = gopay.top_up(ada, visa, 1_000)
        call = PspTask.id_for_call(order.id)
        recheck = (gopay.clock() + timedelta(seconds=10)).isoformat()
        gopay.run(SettleWithPsp(order_id=order.id, status=OperationStatus.PENDING,
                                psp_reference="ch_1", task_id=call, recheck_at=recheck))
        found = gopay.order(order.id)
        assert (found.status, found.psp_reference) == (OrderStatus.PENDING, "ch_1")
        assert (gopay.task(call).due_at, gopay.task(call).done) == (recheck, False)
        assert gopay.balance(ada) == 0

    def test_the_psp_s_reference_is_noted_once(self, gopay: InMemoryGoPay, ada: User,
                                               visa: PaymentMethod) -> None:
        order = gopay.top_up(ada, visa, 1_000)
        for reference in ("ch_1", "ch_1", "ch_2"):
            gopay.run(SettleWithPsp(order_id=order.id, status=OperationStatus.PENDING,
                                    psp_reference=reference))
        assert gopay.order(order.id).psp_reference == "ch_1"
        assert gopay.event_types(order.id).count("PspReferenceNoted") == 1

    def test_an_unknown_order_is_not_found(self, gopay: InMemoryGoPay) -> None:
        with pytest.raises(NotFound):
            gopay.run(SettleWithPsp(order_id=UUID(int=7), status=OperationStatus.SUCCEEDED,
                                    psp_reference="ch_1"))

    def test_the_task_that_brought_the_news_and_the_order_s_call_are_done(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, webhooks: Webhooks) -> None:
        order = gopay.top_up(ada, visa, 1_000)
        task = webhooks.deliver("charge.succeeded", order)
        assert task is not None
        assert (gopay.task(task.id).outcome, gopay.task(PspTask.id_for_call(order.id)).outcome) == (
            "succeeded", "succeeded")
        assert gopay.due_tasks() == []


class TestWebhooks:
    def test_a_webhook_is_kept_once_per_event(self, gopay: InMemoryGoPay, ada: User,
                                              visa: PaymentMethod, webhooks: Webhooks) -> None:
        """The same event delivered twice finds the first delivery's task and does nothing."""
        order = gopay.top_up(ada, visa, 1_000)
        first = webhooks.deliver("charge.succeeded", order, event_id="evt_a")
        head = gopay.head()
        assert webhooks.deliver("charge.succeeded", order, event_id="evt_a") is None
        assert gopay.head() == head
        assert first is not None and first.id == PspTask.id_for_webhook("evt_a")
        assert first.kind == TaskKind.WEBHOOK and credited(gopay, ada) == [1_000]

    def test_a_webhook_settles_what_the_psp_did(self, gopay: InMemoryGoPay, ada: User,
                                                visa: PaymentMethod, webhooks: Webhooks,
                                                psp: FakePsp) -> None:
        """Success with the PSP's fee, failure with its reason; the PSP is not asked anything."""
        paid, declined = gopay.top_up(ada, visa, 1_000), gopay.top_up(ada, visa, 2_000)
        webhooks.deliver("charge.succeeded", paid, fee=30)
        webhooks.deliver("charge.failed", declined, failure_reason="card_declined")
        assert (gopay.order(paid.id).status, gopay.order(declined.id).failure_reason) == (
            OrderStatus.SUCCEEDED, "card_declined")
        assert credited(gopay, ada) == [1_000] and psp.calls == []
        assert gopay.check_books().of(SystemAccount.FEES) == -30

    def test_a_webhook_after_the_answer_changes_nothing(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, webhooks: Webhooks) -> None:
        order = gopay.settle(gopay.top_up(ada, visa, 1_000), fee=30)
        head = gopay.head()
        task = webhooks.deliver("charge.succeeded", order, fee=30)
        assert task is not None and gopay.task(task.id).outcome == "already succeeded"
        assert gopay.event_types(order.id).count("Succeeded") == 1
        assert credited(gopay, ada) == [1_000]
        # Only the webhook's task was recorded, and then completed.
        assert {e.originator_id for e in list(gopay.all_events())[head:]} == {task.id}

    def test_the_answer_after_the_webhook_changes_nothing(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, webhooks: Webhooks) -> None:
        """A webhook may overtake the PSP's own answer to GoPay's call."""
        order = gopay.top_up(ada, visa, 1_000)
        webhooks.deliver("charge.succeeded", order, event_id="evt_a")
        webhooks.deliver("charge.succeeded", order, event_id="evt_b")
        gopay.settle(order)
        assert credited(gopay, ada) == [1_000] and gopay.balance(ada) == 1_000
        gopay.check_books()

    def test_a_failure_after_the_success_changes_nothing(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, webhooks: Webhooks) -> None:
        bank = gopay.add_bank_account(ada)
        gopay.fund(ada, 5_000)
        topup, payout = gopay.top_up(ada, visa, 1_000), gopay.pay_out(ada, bank, 2_000)
        webhooks.deliver("charge.succeeded", topup)
        webhooks.deliver("payout.paid", payout)
        webhooks.deliver("charge.failed", topup)
        webhooks.deliver("payout.failed", payout)
        assert (gopay.order(topup.id).status, gopay.order(payout.id).status) == (
            OrderStatus.SUCCEEDED, OrderStatus.SUCCEEDED)
        wallet = gopay.wallet(ada)
        assert (wallet.balance, wallet.held) == (4_000, 0)
        gopay.check_books()

    def test_a_failed_payout_webhook_gives_the_held_money_back(
            self, gopay: InMemoryGoPay, ada: User, webhooks: Webhooks) -> None:
        gopay.fund(ada, 5_000)
        payout = gopay.pay_out(ada, gopay.add_bank_account(ada), 2_000)
        webhooks.deliver("payout.failed", payout, failure_reason="account_closed")
        wallet = gopay.wallet(ada)
        assert (wallet.balance, wallet.held) == (5_000, 0)
        assert gopay.order(payout.id).failure_reason == "account_closed"


@pytest.fixture
def topped_up(gopay: InMemoryGoPay, ada: User, visa: PaymentMethod) -> PaymentOrder:
    """Ada's card topped up her wallet with 10,000; the PSP kept nothing."""
    return gopay.settle(gopay.top_up(ada, visa, 10_000))


class TestChargebacks:
    def test_a_wallet_that_has_the_money_gives_it_back(
            self, gopay: InMemoryGoPay, ada: User, topped_up: PaymentOrder,
            webhooks: Webhooks) -> None:
        """All of it leaves the wallet for psp_clearing; the PSP's fee is GoPay's cost."""
        webhooks.dispute(topped_up, fee=15)
        chargeback = gopay.order(chargeback_of(topped_up))
        assert (chargeback.status, chargeback.payer_wallet_id, chargeback.amount) == (
            OrderStatus.SUCCEEDED, wallet_id(ada), 10_000)
        [line] = [e for e in gopay.events(wallet_id(ada)) if isinstance(e, Wallet.Debited)]
        assert (line.entry_type, line.amount, line.balance_after, line.counterparty) == (
            "topup", 10_000, 0, "psp_clearing")
        assert line.reference == f"chargeback of top-up {topped_up.id}"
        books = gopay.check_books()
        assert (books.of(SystemAccount.PSP_CLEARING), books.of(SystemAccount.FEES),
                books.of(SystemAccount.RECEIVABLES)) == (15, -15, 0)

    def test_what_the_wallet_cannot_cover_is_owed_to_gopay(
            self, gopay: InMemoryGoPay, ada: User, topped_up: PaymentOrder,
            webhooks: Webhooks) -> None:
        gopay.register("grace@example.com")
        gopay.transfer(ada, "grace@example.com", 6_000)
        webhooks.dispute(topped_up)
        assert gopay.balance(ada) == 0
        books = gopay.check_books()
        assert (books.of(SystemAccount.PSP_CLEARING), books.of(SystemAccount.RECEIVABLES)) == (
            0, -6_000)

    def test_an_empty_wallet_owes_it_all(self, gopay: InMemoryGoPay, ada: User,
                                         topped_up: PaymentOrder, webhooks: Webhooks) -> None:
        """Nothing to take: no line in the wallet, the whole amount a receivable."""
        gopay.register("grace@example.com")
        gopay.transfer(ada, "grace@example.com", 10_000)
        lines_before = gopay.event_types(wallet_id(ada))
        webhooks.dispute(topped_up)
        assert gopay.order(chargeback_of(topped_up)).status == OrderStatus.SUCCEEDED
        assert gopay.event_types(wallet_id(ada)) == lines_before
        assert gopay.check_books().of(SystemAccount.RECEIVABLES) == -10_000

    def test_a_frozen_wallet_gives_the_money_back_too(
            self, gopay: InMemoryGoPay, ada: User, topped_up: PaymentOrder,
            webhooks: Webhooks) -> None:
        gopay.run(SetFrozen(staff_id=gopay.admin.id, user_id=ada.id, frozen=True, reason="fraud"))
        webhooks.dispute(topped_up, 4_000)
        assert gopay.balance(ada) == 6_000
        assert gopay.check_books().of(SystemAccount.RECEIVABLES) == 0

    def test_money_held_for_a_payout_is_not_taken(
            self, gopay: InMemoryGoPay, ada: User, topped_up: PaymentOrder,
            webhooks: Webhooks) -> None:
        """The payout may already be at the PSP: only what is available is taken back."""
        payout = gopay.pay_out(ada, gopay.add_bank_account(ada), 4_000)
        webhooks.dispute(topped_up)
        wallet = gopay.wallet(ada)
        assert (wallet.balance, wallet.held) == (4_000, 4_000)
        gopay.settle(payout)
        assert gopay.balance(ada) == 0
        assert gopay.check_books().of(SystemAccount.RECEIVABLES) == -4_000

    def test_the_same_dispute_twice_takes_the_money_once(
            self, gopay: InMemoryGoPay, ada: User, topped_up: PaymentOrder,
            webhooks: Webhooks) -> None:
        """Two deliveries (even as two events) of one dispute: one chargeback."""
        gopay.fund(ada, 10_000)
        first = webhooks.dispute(topped_up, event_id="evt_a")
        assert webhooks.dispute(topped_up, event_id="evt_a") is None
        second = webhooks.dispute(topped_up, event_id="evt_b")
        assert first is not None and second is not None
        assert gopay.task(second.id).outcome == "charged back"
        assert gopay.balance(ada) == 10_000
        assert gopay.check_books().of(SystemAccount.PSP_CLEARING) == 0

    def test_a_chargeback_before_the_top_up_s_own_news_waits_for_it(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, webhooks: Webhooks,
            process: PspProcess) -> None:
        """Tried again later, it applies once the top-up has succeeded, and only once."""
        topup = gopay.top_up(ada, visa, 10_000)
        task = webhooks.dispute(topup)
        assert task is not None
        waiting = gopay.task(task.id)
        assert (waiting.attempts, waiting.dead, waiting.done) == (1, False, False)
        assert "not succeeded" in waiting.last_error
        assert datetime.fromisoformat(waiting.due_at) > gopay.clock()
        gopay.settle(topup)
        assert gopay.balance(ada) == 10_000
        gopay.clock.advance(minutes=2)
        assert process.run_due() == 1
        assert gopay.task(task.id).outcome == "charged back"
        assert gopay.balance(ada) == 0
        gopay.clock.advance(minutes=2)
        assert process.run_due() == 0
        assert gopay.check_books().of(SystemAccount.PSP_CLEARING) == 0

    @pytest.mark.parametrize("money", [Money(10_001, "USD"), Money(10_000, "EUR")])
    def test_a_chargeback_of_more_than_the_top_up_or_in_another_currency_takes_nothing(
            self, gopay: InMemoryGoPay, ada: User, topped_up: PaymentOrder,
            money: Money) -> None:
        """News that cannot be the top-up's (a PSP's mistake) is refused, and its webhook's task
        ends dead-lettered for staff, rather than taking what the PSP never gave back."""
        with pytest.raises(ValidationFailed, match="is not of a top-up of 10000 USD"):
            gopay.run(ChargeBack(caller_id=topped_up.id, topup_id=topped_up.id,
                                 idempotency_key="dp_9", money=money))
        assert gopay.balance(ada) == 10_000
        assert gopay.check_books().of(SystemAccount.RECEIVABLES) == 0

    def test_only_a_top_up_is_charged_back(self, gopay: InMemoryGoPay, ada: User) -> None:
        gopay.fund(ada, 5_000)
        payout = gopay.settle(gopay.pay_out(ada, gopay.add_bank_account(ada), 1_000))
        with pytest.raises(ValidationFailed):
            gopay.run(ChargeBack(caller_id=payout.id, topup_id=payout.id,
                                 idempotency_key="dp_1", money=Money(1_000, "USD")))
        assert gopay.balance(ada) == 4_000


class TestTasks:
    def test_a_task_is_completed_once(self, gopay: InMemoryGoPay, ada: User,
                                      visa: PaymentMethod) -> None:
        call = PspTask.id_for_call(gopay.top_up(ada, visa, 1_000).id)
        gopay.run(CompleteTask(task_id=call, outcome="succeeded"))
        gopay.run(CompleteTask(task_id=call, outcome="failed"))
        gopay.run(FailAttempt(task_id=call, error="late", retry_at=None))
        task = gopay.task(call)
        assert (task.outcome, task.attempts, task.dead) == ("succeeded", 0, False)
        assert gopay.event_types(call).count("Completed") == 1

    def test_only_a_dead_letter_is_sent_round_again(self, gopay: InMemoryGoPay, ada: User,
                                                    visa: PaymentMethod) -> None:
        call = PspTask.id_for_call(gopay.top_up(ada, visa, 1_000).id)
        with pytest.raises(InvalidState):
            gopay.run(RetryDeadLetter(staff_id=gopay.admin.id, task_id=call))
        gopay.run(FailAttempt(task_id=call, error="no answer", retry_at=None))
        assert [task.id for task in gopay.dead_letters()] == [call]
        gopay.run(RetryDeadLetter(staff_id=gopay.admin.id, task_id=call))
        task = gopay.task(call)
        assert (task.dead, task.attempts, task.due_at) == (False, 1, gopay.clock().isoformat())
        assert gopay.due_tasks() == [call]
