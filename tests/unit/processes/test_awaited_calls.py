"""The request's call to the PSP, awaited: the same outcomes as in a thread, for less.

An API process serves `POST /v1/topups` and `/v1/payouts` on its event loop: the call to the
PSP and the batches are awaited, and a webhook about the order waits for the call's answer
without a thread. Every outcome must be the one the threaded call records.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from gopay.aggregates.payment_method import PaymentMethod
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder
from gopay.aggregates.psp_task import PspTask
from gopay.aggregates.user import User
from gopay.processes.psp import PspProcess
from gopay.psp.port import PspResult, Source
from tests.fake_psp import AwaitedFakePsp, Fault
from tests.unit.commands.in_memory import InMemoryGoPay
from tests.unit.processes.test_topup_cost import Costs, costs, process

__all__ = ["costs", "process"]  # `process` runs this module's `psp`

DECLINED_CARD = "4000000000000002"


@dataclass
class CountingPsp(AwaitedFakePsp):
    """Counts the calls that were awaited, as against made in a thread."""

    awaited: list[str] = field(default_factory=list)

    async def charge_async(self, nonce: str, amount: int, currency: str,
                           source: Source) -> PspResult:
        self.awaited.append(nonce)
        return await super().charge_async(nonce, amount, currency, source)


@pytest.fixture
def psp() -> CountingPsp:
    return CountingPsp(fee=25)


def settled(order: PaymentOrder, gopay: InMemoryGoPay) -> tuple[object, ...]:
    """What an attempt left: the order's outcome and its call's task."""
    stored = gopay.order(order.id)
    task = gopay.task(PspTask.id_for_call(order.id))
    return (stored.status, stored.failure_reason, bool(stored.psp_reference),
            task.done, task.attempts, task.dead)


class TestAnAwaitedCall:
    def test_is_awaited_reads_nothing_back_and_commits_once(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, process: PspProcess,
            psp: CountingPsp, costs: Costs) -> None:
        order = gopay.top_up(ada, visa, 1_000)
        costs.start()
        answered = asyncio.run(process.call_at_once_async(order))
        assert (costs.commits, costs.reads) == (1, [])
        assert psp.awaited == [str(order.id)]
        assert (answered.status, answered.psp_reference) == (OrderStatus.SUCCEEDED, "charge_0001")
        assert gopay.balance(ada) == 1_000 and gopay.task(PspTask.id_for_call(order.id)).done

    @pytest.mark.parametrize("fault", [None, Fault.LOST_ANSWER, Fault.LOST_REQUEST,
                                       Fault.REFUSED])
    def test_records_what_the_call_in_a_thread_records(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, process: PspProcess,
            psp: CountingPsp, fault: Fault | None) -> None:
        outcomes = []
        for awaited in (False, True):
            order = gopay.top_up(ada, visa, 1_000)
            if fault is not None:
                psp.fault_next("charge", fault)
            answered = (asyncio.run(process.call_at_once_async(order)) if awaited
                        else process.call_at_once(order))
            assert answered.status == gopay.order(order.id).status
            outcomes.append((settled(order, gopay), psp.work_done[str(order.id)]))
        assert outcomes[0] == outcomes[1]
        assert len(psp.awaited) == 1  # the second call was awaited, the first was not
        succeeded = sum(o.status == OrderStatus.SUCCEEDED for o in gopay.orders()
                        if o.order_type == "topup")
        assert gopay.balance(ada) == 1_000 * succeeded

    def test_of_a_payout_to_a_closed_account_fails_it_and_gives_the_money_back(
            self, gopay: InMemoryGoPay, ada: User, process: PspProcess) -> None:
        gopay.fund(ada, 5_000)
        closed = gopay.add_bank_account(ada, "GB33BUKB20201555555555")
        order = gopay.pay_out(ada, closed, 2_000)
        assert (gopay.wallet(ada).balance, gopay.wallet(ada).held) == (5_000, 2_000)
        answered = asyncio.run(process.call_at_once_async(order))
        assert (answered.status, answered.failure_reason) == (OrderStatus.FAILED, "account_closed")
        assert (gopay.wallet(ada).balance, gopay.wallet(ada).held) == (5_000, 0)

    def test_of_a_declined_card_fails_the_top_up(
            self, gopay: InMemoryGoPay, ada: User, process: PspProcess) -> None:
        declined = gopay.add_card(ada, DECLINED_CARD)
        answered = asyncio.run(process.call_at_once_async(gopay.top_up(ada, declined, 1_000)))
        assert (answered.status, answered.failure_reason) == (OrderStatus.FAILED, "card_declined")
        assert gopay.balance(ada) == 0

    def test_repeated_finds_its_first_outcome_and_calls_nobody(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, process: PspProcess,
            psp: CountingPsp) -> None:
        first = asyncio.run(process.call_at_once_async(gopay.top_up(ada, visa, 1_000, key="k")))
        again = gopay.top_up(ada, visa, 1_000, key="k")
        answered = asyncio.run(process.call_at_once_async(again))
        assert (answered.id, answered.status) == (first.id, OrderStatus.SUCCEEDED)
        assert psp.calls == [("charge", str(first.id))] and gopay.balance(ada) == 1_000


class TestAWebhookAwaited:
    def test_sent_as_the_psp_answers_waits_for_the_call_to_settle_it(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod, costs: Costs) -> None:
        """The simulator's webhook races its answer: it waits on the loop, costs one command
        and reads nothing."""
        sent: list[asyncio.Task[PspTask | None]] = []

        class AnnouncingPsp(AwaitedFakePsp):
            async def charge_async(self, nonce: str, amount: int, currency: str,
                                   source: Source) -> PspResult:
                result = self.charge(nonce, amount, currency, source)
                sent.append(asyncio.create_task(process.keep_webhook(
                    "evt_1", "charge.succeeded", order.id, {"amount": amount})))
                await asyncio.sleep(0.01)  # the webhook is taken before the answer gets back
                return result

        process = gopay.psp_process(AnnouncingPsp())
        order = gopay.top_up(ada, visa, 1_000)

        async def request_and_webhook() -> PspTask | None:
            await process.call_at_once_async(order)
            return await sent[0]

        costs.start()
        kept = asyncio.run(request_and_webhook())
        assert kept is not None and kept.outcome == "already succeeded"
        assert (costs.commits, costs.reads) == (2, [])  # the settlement, the webhook kept done
        assert gopay.balance(ada) == 1_000

    def test_about_a_pending_order_is_kept_to_be_applied(
            self, gopay: InMemoryGoPay, ada: User, visa: PaymentMethod,
            process: PspProcess) -> None:
        order = gopay.top_up(ada, visa, 1_000)
        task = asyncio.run(process.keep_webhook("evt_1", "charge.succeeded", order.id,
                                                      {"psp_reference": "ch_1", "amount": 1_000}))
        assert task is not None and not task.done
        process.apply(task)
        assert gopay.order(order.id).status == OrderStatus.SUCCEEDED
        assert gopay.balance(ada) == 1_000
        assert asyncio.run(process.keep_webhook("evt_1", "charge.succeeded", order.id,
                                                      {})) is None
