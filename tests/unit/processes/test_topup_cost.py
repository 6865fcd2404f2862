"""What a card top-up costs GoPay: its commands and store reads, counted, and still exactly once."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest

from gopay.aggregates.payment_method import PaymentMethod
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder
from gopay.aggregates.psp_task import PspTask
from gopay.aggregates.user import User
from gopay.processes.psp import PspProcess
from gopay.psp.port import PspResult, Source
from tests.fake_psp import FakePsp
from tests.unit.commands.in_memory import InMemoryGoPay


@dataclass
class Costs:
    """Group commits and aggregate reads from the store (in a batch or not) since `start`."""

    gopay: InMemoryGoPay
    reads: list[UUID] = field(default_factory=list)
    batches: int = 0

    def start(self) -> None:
        self.reads.clear()
        self.batches = self.gopay.app.committer.batches

    @property
    def commits(self) -> int:
        return self.gopay.app.committer.batches - self.batches


@pytest.fixture
def costs(gopay: InMemoryGoPay, monkeypatch: pytest.MonkeyPatch) -> Costs:
    counted = Costs(gopay)
    repository = gopay.app.repository
    read = repository.get

    def counting_get(aggregate_id: UUID, **kwargs: Any) -> Any:
        counted.reads.append(aggregate_id)
        return read(aggregate_id, **kwargs)

    monkeypatch.setattr(repository, "get", counting_get)
    return counted


@pytest.fixture
def psp() -> FakePsp:
    return FakePsp(fee=25)


@pytest.fixture
def process(gopay: InMemoryGoPay, psp: FakePsp) -> PspProcess:
    return gopay.psp_process(psp)


def webhook(gopay: InMemoryGoPay, process: PspProcess, event_type: str, order: PaymentOrder,
            event_id: str = "evt_1") -> PspTask | None:
    """`POST /v1/psp/webhooks` as its route takes one: kept, then applied if not done."""
    data = {"psp_reference": "charge_0001", "merchant_reference": str(order.id),
            "amount": order.amount, "currency": order.currency, "fee": 25,
            "failure_reason": "card_declined" if event_type == "charge.failed" else None,
            "created_at": gopay.clock().isoformat()}
    task = asyncio.run(process.keep_webhook(event_id, event_type, order.id, data))
    if task is not None and not task.done:
        process.apply(task)
    return task


class TestWhatATopUpCosts:
    def test_the_request_s_call_reads_nothing_back_and_commits_once(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, process: PspProcess,
            costs: Costs) -> None:
        """The task, the method and the order come from the commands, not from the store."""
        order = gopay.top_up(ada, visa, 1_000)
        costs.start()
        answered = process.call_at_once(order)
        assert (costs.commits, costs.reads) == (1, [])
        assert (answered.status, answered.psp_reference) == (OrderStatus.SUCCEEDED, "charge_0001")
        assert gopay.balance(ada) == 1_000 and gopay.task(PspTask.id_for_call(order.id)).done

    def test_news_of_an_order_this_process_settled_is_kept_done_by_one_command_unread(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, process: PspProcess,
            costs: Costs) -> None:
        """The usual webhook: the process remembers the order's final status, and the task is
        created already done."""
        order = process.call_at_once(gopay.top_up(ada, visa, 1_000))
        costs.start()
        task = webhook(gopay, process, "charge.succeeded", order)
        assert (costs.commits, costs.reads) == (1, [])
        assert task is not None and (task.done, task.outcome) == (True, "already succeeded")
        assert gopay.event_types(task.id) == ["Created", "Completed"]
        assert gopay.balance(ada) == 1_000

    def test_news_of_an_order_another_process_settled_is_read_once(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, process: PspProcess,
            psp: FakePsp, costs: Costs) -> None:
        order = process.call_at_once(gopay.top_up(ada, visa, 1_000))
        elsewhere = gopay.psp_process(psp)
        costs.start()
        task = webhook(gopay, elsewhere, "charge.failed", order)
        assert (costs.commits, costs.reads) == (1, [order.id])
        assert task is not None and task.outcome == "already succeeded"
        assert gopay.order(order.id).status == OrderStatus.SUCCEEDED
        assert gopay.balance(ada) == 1_000


class TestWebhooksKeptDone:
    def test_a_second_delivery_finds_the_first_one_s_task_and_does_nothing(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod,
            process: PspProcess) -> None:
        order = process.call_at_once(gopay.top_up(ada, visa, 1_000))
        first = webhook(gopay, process, "charge.succeeded", order)
        head = gopay.head()
        assert webhook(gopay, process, "charge.succeeded", order) is None
        assert gopay.head() == head and first is not None
        assert gopay.task(first.id).outcome == "already succeeded"
        assert gopay.balance(ada) == 1_000

    def test_a_webhook_before_the_call_s_answer_settles_the_order_once(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, process: PspProcess,
            psp: FakePsp) -> None:
        """News of a pending order is applied as before; the call then finds it settled."""
        order = gopay.top_up(ada, visa, 1_000)
        task = webhook(gopay, process, "charge.succeeded", order)
        assert task is not None and gopay.task(task.id).outcome == "succeeded"
        answered = process.call_at_once(order)
        assert answered.status == OrderStatus.SUCCEEDED and psp.work_done[str(order.id)] == 0
        assert gopay.task(PspTask.id_for_call(order.id)).done
        assert gopay.balance(ada) == 1_000

    def test_a_failure_webhook_after_a_success_changes_nothing(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod,
            process: PspProcess) -> None:
        order = process.call_at_once(gopay.top_up(ada, visa, 1_000))
        task = webhook(gopay, process, "charge.failed", order, event_id="evt_2")
        assert task is not None and gopay.task(task.id).outcome == "already succeeded"
        assert gopay.order(order.id).status == OrderStatus.SUCCEEDED
        assert gopay.balance(ada) == 1_000

    def test_a_webhook_sent_as_the_psp_answers_waits_for_the_call_to_settle_it(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, costs: Costs) -> None:
        """The simulator's webhook races its answer; it waits for it, and costs one command."""
        kept: list[PspTask | None] = []

        class AnnouncingPsp(FakePsp):
            def charge(self, nonce: str, amount: int, currency: str,
                       source: Source) -> PspResult:
                result = super().charge(nonce, amount, currency, source)
                sender.start()  # the webhook goes out before the answer gets back
                return result

        process = gopay.psp_process(AnnouncingPsp())
        order = gopay.top_up(ada, visa, 1_000)
        sender = threading.Thread(target=lambda: kept.append(
            webhook(gopay, process, "charge.succeeded", order)))
        costs.start()
        process.call_at_once(order)
        sender.join(timeout=10)
        assert kept and kept[0] is not None and kept[0].outcome == "already succeeded"
        assert costs.commits == 2  # the call's settlement, the webhook kept done
        assert gopay.balance(ada) == 1_000
