"""The PSP process: every task tried until done, retried by its policy, never charging twice."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

import pytest
from prometheus_client import REGISTRY
from tenacity import stop_after_attempt, wait_fixed

from gopay.aggregates.ledger import SystemAccount
from gopay.aggregates.payment_method import PaymentMethod
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder
from gopay.aggregates.psp_task import PspTask
from gopay.aggregates.user import User
from gopay.commands.payment_methods import RemovePaymentMethod
from gopay.commands.psp_outcomes import ReceiveWebhook, RetryDeadLetter
from gopay.processes.psp import CALL_RETRIES, Policies, PspProcess
from gopay.psp.port import OperationKind, OperationStatus
from gopay.retry import RetryPolicy
from tests.fake_psp import FakePsp, Fault, Outcome
from tests.unit.commands.in_memory import InMemoryGoPay

# Deterministic policies: 30 s between calls, 5 s between webhook attempts, three tries each.
POLICIES = Policies(call=RetryPolicy(wait=wait_fixed(30), stop=stop_after_attempt(3)),
                    webhook=RetryPolicy(wait=wait_fixed(5), stop=stop_after_attempt(3)))


@pytest.fixture
def psp() -> FakePsp:
    """A PSP that keeps 25 of every operation that succeeds."""
    return FakePsp(fee=25)


@pytest.fixture
def process(gopay: InMemoryGoPay, psp: FakePsp) -> PspProcess:
    return gopay.psp_process(psp, POLICIES)


@pytest.fixture
def ada(gopay: InMemoryGoPay) -> User:
    ada = gopay.register("ada@example.com")
    gopay.fund(ada, 20_000)
    return ada


@pytest.fixture
def visa(gopay: InMemoryGoPay, ada: User) -> PaymentMethod:
    return gopay.add_card(ada)


@pytest.fixture
def bank(gopay: InMemoryGoPay, ada: User) -> PaymentMethod:
    return gopay.add_bank_account(ada)


def call_of(order: PaymentOrder) -> UUID:
    return PspTask.id_for_call(order.id)


def metric(name: str, operation: str, outcome: str | None = None) -> float:
    labels = {"operation": operation, **({"outcome": outcome} if outcome else {})}
    return REGISTRY.get_sample_value(name, labels) or 0.0


def held(gopay: InMemoryGoPay, user: User) -> tuple[int, int]:
    wallet = gopay.wallet(user)
    return wallet.balance, wallet.held


class TestCalling:
    def test_the_request_s_own_attempt_charges_without_asking_first(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, psp: FakePsp,
            process: PspProcess) -> None:
        """The request knows it made no call yet; the PSP's answer settles the order at once."""
        order = gopay.top_up(ada, visa, 1_000)
        process.attempt(call_of(order), first=True)
        assert psp.calls == [("charge", str(order.id))]
        settled = gopay.order(order.id)
        assert (settled.status, settled.psp_reference) == (OrderStatus.SUCCEEDED, "charge_0001")
        assert gopay.balance(ada) == 21_000
        assert gopay.check_books().of(SystemAccount.FEES) == -25  # the PSP's fee, a cost
        assert gopay.task(call_of(order)).done

    def test_any_other_attempt_asks_the_psp_first(self, gopay: InMemoryGoPay, ada: User,
                                                  visa: PaymentMethod, psp: FakePsp,
                                                  process: PspProcess) -> None:
        order = gopay.top_up(ada, visa, 1_000)
        process.attempt(call_of(order))
        assert psp.calls == [("status", str(order.id)), ("charge", str(order.id))]
        assert gopay.order(order.id).status == OrderStatus.SUCCEEDED

    def test_the_job_takes_over_a_call_its_request_never_made(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, psp: FakePsp,
            process: PspProcess) -> None:
        """Left alone for the grace period (the request died), the call is made by the job."""
        order = gopay.top_up(ada, visa, 1_000)
        assert process.run_due() == 0
        gopay.clock.advance(seconds=15)
        assert process.run_due() == 1
        assert psp.calls == [("status", str(order.id)), ("charge", str(order.id))]
        assert gopay.balance(ada) == 21_000

    def test_an_answer_lost_after_the_charge_is_found_by_asking(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, psp: FakePsp,
            process: PspProcess) -> None:
        """The seed's scenario: the PSP charged, GoPay never heard; one charge, one credit."""
        order = gopay.top_up(ada, visa, 1_000)
        psp.fault_next("charge", Fault.LOST_ANSWER)
        retries = metric("gopay_psp_retries_total", "charge")
        process.attempt(call_of(order), first=True)
        task = gopay.task(call_of(order))
        assert (gopay.order(order.id).status, task.attempts, task.dead) == (
            OrderStatus.PENDING, 1, False)
        assert "no answer from the PSP" in task.last_error
        assert datetime.fromisoformat(task.due_at) == gopay.clock() + timedelta(seconds=30)
        gopay.clock.advance(seconds=29)
        assert process.run_due() == 0
        gopay.clock.advance(seconds=1)
        assert process.run_due() == 1
        assert psp.calls == [("charge", str(order.id)), ("status", str(order.id))]
        assert psp.work_done[str(order.id)] == 1 and not psp.repeated_calls
        assert gopay.balance(ada) == 21_000 and gopay.order(order.id).status == OrderStatus.SUCCEEDED
        assert metric("gopay_psp_retries_total", "charge") == retries + 1

    def test_a_request_lost_before_the_charge_is_made_again_under_the_same_nonce(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, psp: FakePsp,
            process: PspProcess) -> None:
        order = gopay.top_up(ada, visa, 1_000)
        psp.fault_next("charge", Fault.LOST_REQUEST)
        process.attempt(call_of(order), first=True)
        assert psp.operations == {}
        gopay.clock.advance(seconds=30)
        process.run_due()
        nonce = str(order.id)
        assert psp.calls == [("charge", nonce), ("status", nonce), ("charge", nonce)]
        assert psp.work_done[nonce] == 1 and gopay.balance(ada) == 21_000

    def test_no_answer_is_retried_as_the_policy_says_then_dead_lettered(
            self, gopay: InMemoryGoPay, ada: User, bank: PaymentMethod, psp: FakePsp,
            process: PspProcess) -> None:
        """After the last attempt the payout waits for staff, its money still held: the PSP
        may have paid it. Sent round again, it asks first and settles once."""
        order = gopay.pay_out(ada, bank, 5_000)
        psp.fault_next("payout", Fault.LOST_REQUEST)
        psp.fault_next("status", Fault.LOST_REQUEST, Fault.LOST_ANSWER)
        dead_letters = metric("gopay_psp_dead_letters_total", "payout")
        process.attempt(call_of(order), first=True)
        for attempts in (2, 3):
            gopay.clock.advance(seconds=30)
            assert process.run_due() == 1
            assert gopay.task(call_of(order)).attempts == attempts
        task = gopay.task(call_of(order))
        assert (task.dead, task.done) == (True, False)
        assert gopay.dead_letters() == [task] and gopay.due_tasks() == []
        assert metric("gopay_psp_dead_letters_total", "payout") == dead_letters + 1
        assert gopay.order(order.id).status == OrderStatus.PENDING
        assert held(gopay, ada) == (20_000, 5_000)
        gopay.clock.advance(hours=1)
        assert process.run_due() == 0

        gopay.run(RetryDeadLetter(staff_id=gopay.admin.id, task_id=task.id))
        assert process.run_due() == 1
        assert gopay.order(order.id).status == OrderStatus.SUCCEEDED
        assert held(gopay, ada) == (15_000, 0)
        assert psp.work_done[str(order.id)] == 1 and gopay.dead_letters() == []

    def test_the_default_policy_backs_off_exponentially_for_twelve_attempts(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, psp: FakePsp) -> None:
        """1-2 s, then 2-3 s, 4-5 s, ... (with up to a second of jitter), at most two minutes."""
        process = gopay.psp_process(psp, Policies(call=CALL_RETRIES))
        order = gopay.top_up(ada, visa, 1_000)
        psp.fault_next("charge", Fault.LOST_REQUEST)
        psp.fault_next("status", *[Fault.LOST_REQUEST] * 11)
        process.attempt(call_of(order), first=True)
        for attempt in range(1, 12):
            task = gopay.task(call_of(order))
            delay = (datetime.fromisoformat(task.due_at) - gopay.clock()).total_seconds()
            base = min(2 ** (attempt - 1), 120)
            assert (task.attempts, task.dead) == (attempt, False)
            assert base <= delay <= min(base + 1, 120), (attempt, delay)
            gopay.clock.advance(seconds=delay)
            assert process.run_due() == 1
        assert gopay.task(call_of(order)).dead and gopay.task(call_of(order)).attempts == 12
        assert psp.operations == {}

    def test_a_declined_card_fails_the_top_up(self, gopay: InMemoryGoPay, ada: User,
                                              psp: FakePsp, process: PspProcess) -> None:
        order = gopay.top_up(ada, gopay.add_card(ada, "4000000000000002"), 1_000)
        process.attempt(call_of(order), first=True)
        failed = gopay.order(order.id)
        assert (failed.status, failed.failure_reason, failed.postings) == (
            OrderStatus.FAILED, "card_declined", ())
        assert gopay.balance(ada) == 20_000 and gopay.task(call_of(order)).outcome == "failed"

    def test_a_closed_account_fails_the_payout_and_gives_the_money_back(
            self, gopay: InMemoryGoPay, ada: User, psp: FakePsp, process: PspProcess) -> None:
        closed = gopay.add_bank_account(ada, "GB33BUKB20201555555555")
        order = gopay.pay_out(ada, closed, 5_000)
        process.attempt(call_of(order), first=True)
        assert gopay.order(order.id).failure_reason == "account_closed"
        assert held(gopay, ada) == (20_000, 0)

    def test_a_request_the_psp_refuses_fails_the_order(self, gopay: InMemoryGoPay, ada: User,
                                                       bank: PaymentMethod, psp: FakePsp,
                                                       process: PspProcess) -> None:
        order = gopay.pay_out(ada, bank, 5_000)
        psp.fault_next("payout", Fault.REFUSED)
        process.attempt(call_of(order), first=True)
        assert gopay.order(order.id).failure_reason == "invalid_request"
        assert held(gopay, ada) == (20_000, 0) and psp.operations == {}

    @pytest.mark.parametrize(("retry_after", "waited"), [(90.0, 90), (5.0, 30), (None, 30)])
    def test_a_busy_psp_puts_the_call_off_as_long_as_it_asks_and_fails_nothing(
            self, gopay: InMemoryGoPay, ada: User, bank: PaymentMethod, psp: FakePsp,
            process: PspProcess, retry_after: float | None, waited: int) -> None:
        """429: the payout stays pending, its money held; the next attempt waits the PSP's
        Retry-After when that is longer than the policy's 30 s, then pays once."""
        order = gopay.pay_out(ada, bank, 5_000)
        psp.retry_after = retry_after
        psp.fault_next("payout", Fault.BUSY)
        process.attempt(call_of(order), first=True)
        task = gopay.task(call_of(order))
        assert (gopay.order(order.id).status, task.attempts, task.dead) == (
            OrderStatus.PENDING, 1, False)
        assert "the PSP is busy" in task.last_error
        assert datetime.fromisoformat(task.due_at) == gopay.clock() + timedelta(seconds=waited)
        assert held(gopay, ada) == (20_000, 5_000) and psp.operations == {}
        gopay.clock.advance(seconds=waited)
        assert process.run_due() == 1
        assert gopay.order(order.id).status == OrderStatus.SUCCEEDED
        assert held(gopay, ada) == (15_000, 0) and psp.work_done[str(order.id)] == 1

    def test_a_busy_status_query_never_fails_what_the_psp_did(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, psp: FakePsp,
            process: PspProcess) -> None:
        """The charge was made but its answer lost; the status query is turned away: still
        pending (failing it would keep the customer's money uncredited), then credited once."""
        order = gopay.top_up(ada, visa, 1_000)
        psp.fault_next("charge", Fault.LOST_ANSWER)
        psp.fault_next("status", Fault.BUSY)
        process.attempt(call_of(order), first=True)
        gopay.clock.advance(seconds=30)
        assert process.run_due() == 1
        assert gopay.order(order.id).status == OrderStatus.PENDING
        assert gopay.task(call_of(order)).attempts == 2
        gopay.clock.advance(seconds=30)
        assert process.run_due() == 1
        assert gopay.order(order.id).status == OrderStatus.SUCCEEDED
        assert gopay.balance(ada) == 21_000 and psp.work_done[str(order.id)] == 1

    @pytest.mark.parametrize("change", [{"amount": 900}, {"currency": "EUR"},
                                        {"kind": OperationKind.PAYOUT}])
    def test_an_operation_under_the_nonce_that_is_not_the_order_s_settles_nothing(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, psp: FakePsp,
            process: PspProcess, change: dict[str, object]) -> None:
        """The status query finds another amount, currency or kind under the order's nonce:
        nothing is booked and no attempt can mend it, so the call is dead-lettered at once for
        staff, the order still pending."""
        order = gopay.top_up(ada, visa, 1_000)
        psp.fault_next("charge", Fault.LOST_ANSWER)
        process.attempt(call_of(order), first=True)
        nonce = str(order.id)
        psp.operations[nonce] = replace(psp.operations[nonce], **change)  # type: ignore[arg-type]
        mismatches = metric("gopay_psp_calls_total", "charge", "mismatch")
        gopay.clock.advance(seconds=30)
        assert process.run_due() == 1
        task = gopay.task(call_of(order))
        assert (task.dead, task.attempts) == (True, 2)
        assert "not the order's" in task.last_error
        assert gopay.order(order.id).status == OrderStatus.PENDING
        assert gopay.balance(ada) == 20_000
        assert metric("gopay_psp_calls_total", "charge", "mismatch") == mismatches + 1

    @pytest.mark.parametrize("first", [True, False])
    def test_a_removed_payment_method_fails_the_order(
            self, gopay: InMemoryGoPay, ada: User, bank: PaymentMethod, psp: FakePsp,
            process: PspProcess, first: bool) -> None:
        """Its number is forgotten: nothing can be paid to it, and the payout is given back."""
        order = gopay.pay_out(ada, bank, 5_000)
        gopay.run(RemovePaymentMethod(owner_id=ada.id, method_id=bank.id))
        process.attempt(call_of(order), first=first)
        failed = gopay.order(order.id)
        assert (failed.status, failed.failure_reason) == (OrderStatus.FAILED, "not_found")
        assert held(gopay, ada) == (20_000, 0)
        assert psp.calls == ([] if first else [("status", str(order.id))])

    def test_a_removed_method_does_not_hide_what_the_psp_already_did(
            self, gopay: InMemoryGoPay, ada: User, bank: PaymentMethod, psp: FakePsp,
            process: PspProcess) -> None:
        """Paid out before it was removed, answer lost: the PSP's status settles it."""
        order = gopay.pay_out(ada, bank, 5_000)
        psp.fault_next("payout", Fault.LOST_ANSWER)
        process.attempt(call_of(order), first=True)
        gopay.run(RemovePaymentMethod(owner_id=ada.id, method_id=bank.id))
        gopay.clock.advance(seconds=30)
        process.run_due()
        assert gopay.order(order.id).status == OrderStatus.SUCCEEDED
        assert held(gopay, ada) == (15_000, 0)

    def test_pending_at_the_psp_is_put_off_and_asked_again(
            self, gopay: InMemoryGoPay, ada: User, bank: PaymentMethod, psp: FakePsp,
            process: PspProcess) -> None:
        """Not a failure: no attempt is counted, the order waits, the PSP is asked every 10 s."""
        order = gopay.top_up(ada, bank, 1_000)
        nonce = str(order.id)
        psp.will(nonce, Outcome(OperationStatus.PENDING))
        process.attempt(call_of(order), first=True)
        for recheck in range(2):
            task = gopay.task(call_of(order))
            assert (task.attempts, task.done, gopay.order(order.id).status) == (
                0, False, OrderStatus.PENDING)
            assert datetime.fromisoformat(task.due_at) == gopay.clock() + timedelta(seconds=10)
            assert gopay.order(order.id).psp_reference == "charge_0001"
            gopay.clock.advance(seconds=9)
            assert process.run_due() == 0
            gopay.clock.advance(seconds=1)
            if recheck == 0:
                assert process.run_due() == 1  # asked: still pending
        psp.finish(nonce, Outcome(fee=10))
        assert process.run_due() == 1
        assert gopay.order(order.id).status == OrderStatus.SUCCEEDED
        assert gopay.balance(ada) == 21_000
        assert [method for method, _ in psp.calls] == ["charge", "status", "status"]

    def test_a_finished_task_is_left_alone(self, gopay: InMemoryGoPay, ada: User,
                                           visa: PaymentMethod, psp: FakePsp,
                                           process: PspProcess) -> None:
        order = gopay.settle(gopay.top_up(ada, visa, 1_000))
        head = gopay.head()
        process.attempt(call_of(order), first=True)
        assert psp.calls == [] and gopay.head() == head

    def test_one_task_s_bug_does_not_stop_the_others(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, psp: FakePsp,
            process: PspProcess) -> None:
        broken, fine = gopay.top_up(ada, visa, 1_000), gopay.top_up(ada, visa, 2_000)
        psp.fault_next("status", Fault.BROKEN)  # met by the first task due: the older one
        gopay.clock.advance(seconds=15)
        assert process.run_due() == 2
        assert gopay.order(fine.id).status == OrderStatus.SUCCEEDED
        assert gopay.order(broken.id).status == OrderStatus.PENDING
        assert gopay.due_tasks() == [call_of(broken)]


class TestWebhookTasks:
    def receive(self, gopay: InMemoryGoPay, order_id: UUID | None,
                event_type: str = "charge.succeeded", amount: int = 1_000) -> PspTask:
        task = gopay.run(ReceiveWebhook(
            event_id="evt_1", event_type=event_type, order_id=order_id,
            data={"psp_reference": "ch_1", "merchant_reference": str(order_id or "ord_42"),
                  "amount": amount, "currency": "USD", "fee": 0}))
        assert task is not None
        return task

    @pytest.mark.parametrize("order_id", [None, UUID(int=42)])
    def test_a_webhook_for_no_order_of_gopay_s_is_dead_lettered_after_its_attempts(
            self, gopay: InMemoryGoPay, process: PspProcess, psp: FakePsp,
            order_id: UUID | None) -> None:
        task = self.receive(gopay, order_id)
        process.attempt(task.id)
        for attempts in (1, 2):
            assert (gopay.task(task.id).attempts, gopay.task(task.id).dead) == (attempts, False)
            gopay.clock.advance(seconds=5)
            assert process.run_due() == 1
        dead = gopay.task(task.id)
        assert (dead.attempts, dead.dead) == (3, True)
        assert ("names no GoPay order" in dead.last_error if order_id is None
                else "NotFound" in dead.last_error)
        assert psp.calls == []

    def test_news_of_another_amount_settles_nothing(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod,
            process: PspProcess) -> None:
        """A webhook saying the top-up's charge moved another amount: dead-lettered at once,
        the order left pending, nothing credited; news of the right amount settles it."""
        topup = gopay.top_up(ada, visa, 1_000)
        wrong = self.receive(gopay, topup.id, amount=1_001)
        process.attempt(wrong.id)
        assert gopay.task(wrong.id).dead and "amount 1001, not 1000" in gopay.task(wrong.id).last_error
        assert gopay.order(topup.id).status == OrderStatus.PENDING and gopay.balance(ada) == 20_000
        right = gopay.run(ReceiveWebhook(  # as a PSP may send it: the charge, currency in lower case
            event_id="evt_2", event_type="charge.succeeded", order_id=topup.id,
            data={"object": "charge", "psp_reference": "ch_1", "amount": 1_000,
                  "currency": "usd", "fee": 0}))
        assert right is not None
        process.attempt(right.id)
        assert gopay.order(topup.id).status == OrderStatus.SUCCEEDED
        assert gopay.balance(ada) == 21_000

    def test_a_dead_letter_sent_round_again_is_applied(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod,
            process: PspProcess) -> None:
        """A dispute that came before its top-up's news and gave up: staff send it again."""
        topup = gopay.top_up(ada, visa, 10_000)
        task = self.receive(gopay, topup.id, "charge.disputed", 10_000)
        for _ in range(3):
            process.attempt(task.id)
            gopay.clock.advance(seconds=5)
        assert gopay.task(task.id).dead
        gopay.settle(topup)
        gopay.run(RetryDeadLetter(staff_id=gopay.admin.id, task_id=task.id))
        assert process.run_due() == 1
        assert gopay.task(task.id).outcome == "charged back"
        assert gopay.balance(ada) == 20_000
