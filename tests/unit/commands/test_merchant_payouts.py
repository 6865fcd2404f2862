"""Automated merchant payouts: the schedule's rules and periods, and each period paid out once."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from gopay.aggregates import instruments
from gopay.aggregates.errors import (
    CurrencyMismatch,
    Forbidden,
    InvalidState,
    NotFound,
    ValidationFailed,
)
from gopay.aggregates.fees import FeeRule
from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.payment_method import PaymentMethod
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder
from gopay.aggregates.payout_schedule import Frequency, PayoutSchedule, period_due
from gopay.aggregates.psp_task import PspTask
from gopay.aggregates.user import User
from gopay.commands.merchant_payouts import PayOutMerchant, SetPayoutSchedule, StopPayoutSchedule
from gopay.commands.payment_methods import AddPaymentMethod
from gopay.commands.payouts import RequestPayout
from gopay.commands.staff import SetFrozen
from gopay.processes.psp import PspProcess
from tests.unit.commands.in_memory import InMemoryGoPay, settings, wallet_id
from tests.unit.commands.test_bill_payments import IBAN, OTHER_IBAN, FakePsp

FRIDAY = date(2026, 3, 13)  # the story's first day (in_memory.START)


class TestPeriods:
    def test_a_daily_schedule_is_due_every_day_from_the_day_it_was_set(self) -> None:
        assert period_due(Frequency.DAILY, None, FRIDAY, FRIDAY) == "2026-03-13"
        assert period_due(Frequency.DAILY, None, FRIDAY, FRIDAY + timedelta(days=1)) == "2026-03-14"
        assert period_due(Frequency.DAILY, None, FRIDAY, FRIDAY - timedelta(days=1)) is None

    def test_a_weekly_schedule_is_due_from_its_weekday_to_the_end_of_the_iso_week(self) -> None:
        """Due on the payday and, if the job missed it, later that week; never before it."""
        start = date(2026, 3, 9)  # a Monday
        due = [period_due(Frequency.WEEKLY, "wednesday", start, start + timedelta(days=n))
               for n in range(9)]
        assert due == [None, None, "2026-W11", "2026-W11", "2026-W11", "2026-W11", "2026-W11",
                       None, None]

    def test_a_payday_before_the_schedule_was_set_is_not_due(self) -> None:
        """Set on a Friday for Mondays: the first payout is next Monday's, not at once."""
        assert period_due(Frequency.WEEKLY, "monday", FRIDAY, FRIDAY) is None
        assert period_due(Frequency.WEEKLY, "monday", FRIDAY, date(2026, 3, 16)) == "2026-W12"

    def test_weeks_are_named_by_iso_year(self) -> None:
        """1 January 2027 is a Friday of ISO week 53 of 2026."""
        new_year = date(2027, 1, 1)
        assert period_due(Frequency.WEEKLY, "friday", new_year, new_year) == "2026-W53"


@pytest.fixture
def shop(gopay: InMemoryGoPay) -> User:
    return gopay.register("till@shop.example", kind="company", business_name="Corner Shop",
                          category="merchant")


def bank_account(gopay: InMemoryGoPay, owner: User, iban: str = IBAN) -> PaymentMethod:
    return gopay.run(AddPaymentMethod(owner_id=owner.id,
                                      instrument=instruments.bank_account(iban, "Corner Shop")))


def schedule(gopay: InMemoryGoPay, merchant: User, method: PaymentMethod | None = None,
             **terms: Any) -> PayoutSchedule:
    values: dict[str, Any] = {"frequency": "daily", "weekday": None, "minimum": 1_000,
                              "currency": None, **terms}
    method = method or bank_account(gopay, merchant)
    return gopay.run(SetPayoutSchedule(merchant_id=merchant.id, payment_method_id=method.id,
                                       **values))


def pay_out(gopay: InMemoryGoPay, merchant: User) -> PaymentOrder:
    """What the job does for a schedule the read side shows as due today."""
    found = gopay.app.get(PayoutSchedule.id_for(merchant.id), PayoutSchedule)
    period = found.due(gopay.context.today()) or "not-due"
    return gopay.run(PayOutMerchant.for_period(merchant.id, period))


def settle(gopay: InMemoryGoPay, psp: FakePsp, order: PaymentOrder) -> PaymentOrder:
    process = PspProcess(gopay.commands, psp, due=lambda limit: [])  # type: ignore[arg-type]  # payouts only
    process.attempt(PspTask.id_for_call(order.id), first=True)
    return gopay.order(order.id)


class TestSettingASchedule:
    def test_a_merchant_sets_it_to_one_of_its_bank_accounts(self, gopay: InMemoryGoPay,
                                                            shop: User) -> None:
        """The terms and the masked account are recorded, by the merchant, from today."""
        set_ = schedule(gopay, shop, frequency="weekly", weekday="friday", minimum=5_000)
        assert (set_.active, set_.frequency, set_.weekday, set_.minimum, set_.currency) == (
            True, "weekly", "friday", 5_000, "USD")
        assert set_.bank_account_shown.endswith("...3000") and set_.starts_on == FRIDAY
        assert gopay.event_types(set_.id) == ["Created", "Set"]
        assert gopay.events(set_.id)[1].by == shop.id

    def test_the_same_terms_again_change_nothing(self, gopay: InMemoryGoPay, shop: User) -> None:
        method = bank_account(gopay, shop)
        schedule(gopay, shop, method)
        again = schedule(gopay, shop, method)
        assert gopay.event_types(again.id) == ["Created", "Set"]

    @pytest.mark.parametrize(("terms", "error"), [
        ({"frequency": "weekly"}, ValidationFailed),
        ({"frequency": "weekly", "weekday": "someday"}, ValidationFailed),
        ({"frequency": "daily", "weekday": "monday"}, ValidationFailed),
        ({"frequency": "hourly"}, ValidationFailed),
        ({"minimum": 0}, ValidationFailed),
        ({"currency": "EUR"}, CurrencyMismatch),
    ])
    def test_bad_terms_are_refused(self, gopay: InMemoryGoPay, shop: User,
                                   terms: dict[str, Any], error: type[Exception]) -> None:
        with pytest.raises(error):
            schedule(gopay, shop, **terms)

    def test_only_the_merchant_s_own_bank_account_will_do(self, gopay: InMemoryGoPay,
                                                         shop: User) -> None:
        other = gopay.register("kiosk@example.com", kind="company", business_name="Kiosk",
                               category="merchant")
        with pytest.raises(NotFound):
            schedule(gopay, shop, bank_account(gopay, other))
        card = gopay.run(AddPaymentMethod(owner_id=shop.id, instrument=instruments.card(
            "4242424242424242", 12, 2031, "123", "Corner Shop", today=FRIDAY)))
        with pytest.raises(ValidationFailed):
            schedule(gopay, shop, card)

    def test_a_person_has_no_payout_schedule(self, gopay: InMemoryGoPay) -> None:
        ada = gopay.register("ada@example.com")
        with pytest.raises(Forbidden):
            schedule(gopay, ada)

    def test_stopping_needs_an_active_schedule(self, gopay: InMemoryGoPay, shop: User) -> None:
        with pytest.raises(NotFound):
            gopay.run(StopPayoutSchedule(merchant_id=shop.id))
        schedule(gopay, shop)
        stopped = gopay.run(StopPayoutSchedule(merchant_id=shop.id))
        assert not stopped.active and stopped.due(FRIDAY) is None
        with pytest.raises(NotFound):
            gopay.run(StopPayoutSchedule(merchant_id=shop.id))


class TestPayingOut:
    def test_what_is_available_is_held_for_the_bank_account(self, gopay: InMemoryGoPay,
                                                           shop: User) -> None:
        """Balance minus holds, held at once, with the PSP's task, in one order for the day."""
        gopay.fund(shop, 7_500)
        schedule(gopay, shop)
        order = pay_out(gopay, shop)
        assert (order.status, order.order_type, order.amount) == (
            OrderStatus.PENDING, TransactionType.PAYOUT, 7_500)
        assert (gopay.wallet(shop).balance, gopay.wallet(shop).available) == (7_500, 0)
        assert gopay.app.find(PspTask.id_for_call(order.id), PspTask) is not None
        found = gopay.app.get(PayoutSchedule.id_for(shop.id), PayoutSchedule)
        assert found.last_period == "2026-03-13"
        assert gopay.events(found.id)[-1].order_id == order.id

    def test_a_period_is_paid_out_once_however_often_the_job_asks(self, gopay: InMemoryGoPay,
                                                                  shop: User) -> None:
        """Money arriving later that day waits for the next day's payout."""
        gopay.fund(shop, 5_000)
        schedule(gopay, shop)
        first = pay_out(gopay, shop)
        gopay.fund(shop, 3_000)
        again = gopay.run(PayOutMerchant.for_period(shop.id, "2026-03-13"))
        assert again.id == first.id and gopay.wallet(shop).available == 3_000
        gopay.clock.advance(days=1)
        tomorrow = pay_out(gopay, shop)
        assert tomorrow.id != first.id and tomorrow.amount == 3_000
        gopay.check_books()

    def test_a_period_that_is_not_due_is_refused(self, gopay: InMemoryGoPay, shop: User) -> None:
        """The job cannot pay tomorrow's period today, nor a weekly one before its payday."""
        gopay.fund(shop, 5_000)
        schedule(gopay, shop, frequency="weekly", weekday="monday")
        for period in ("2026-03-14", "2026-W11", "2026-W12"):
            with pytest.raises(InvalidState):
                gopay.run(PayOutMerchant.for_period(shop.id, period))
        gopay.clock.advance(days=3)  # Monday
        assert pay_out(gopay, shop).amount == 5_000

    def test_under_the_minimum_nothing_happens(self, gopay: InMemoryGoPay, shop: User) -> None:
        gopay.fund(shop, 999)
        schedule(gopay, shop, minimum=1_000)
        with pytest.raises(InvalidState):
            pay_out(gopay, shop)
        assert gopay.wallet(shop).held == 0
        gopay.fund(shop, 1)
        assert pay_out(gopay, shop).amount == 1_000

    def test_held_money_is_not_paid_out(self, gopay: InMemoryGoPay, shop: User) -> None:
        """A payout the merchant asked for holds its money: the schedule pays what is left."""
        gopay.fund(shop, 5_000)
        method = bank_account(gopay, shop)
        asked = gopay.run(RequestPayout(caller_id=shop.id, wallet_id=wallet_id(shop),
                                        payment_method_id=method.id, money=Money(2_000, "USD")))
        schedule(gopay, shop, method)
        assert pay_out(gopay, shop).amount == 3_000
        assert asked.status == OrderStatus.PENDING and gopay.wallet(shop).available == 0

    def test_a_frozen_merchant_is_not_paid_until_unfrozen(self, gopay: InMemoryGoPay,
                                                          shop: User) -> None:
        """Freezing does not use up the period: unfrozen the same day, it is paid out."""
        gopay.fund(shop, 5_000)
        schedule(gopay, shop)
        gopay.run(SetFrozen(staff_id=gopay.admin.id, user_id=shop.id, frozen=True, reason="x"))
        with pytest.raises(InvalidState):
            pay_out(gopay, shop)
        assert gopay.wallet(shop).held == 0
        assert gopay.app.get(PayoutSchedule.id_for(shop.id), PayoutSchedule).last_period is None
        gopay.run(SetFrozen(staff_id=gopay.admin.id, user_id=shop.id, frozen=False, reason="x"))
        assert pay_out(gopay, shop).amount == 5_000

    def test_a_stopped_schedule_pays_nothing(self, gopay: InMemoryGoPay, shop: User) -> None:
        gopay.fund(shop, 5_000)
        schedule(gopay, shop)
        gopay.run(StopPayoutSchedule(merchant_id=shop.id))
        with pytest.raises(InvalidState):
            gopay.run(PayOutMerchant.for_period(shop.id, "2026-03-13"))
        assert gopay.wallet(shop).held == 0

    def test_a_fee_on_top_is_left_to_cover_it(self) -> None:
        """Never more than available: amount plus the payer's fee fit in it exactly."""
        gopay = InMemoryGoPay(settings(fees={TransactionType.PAYOUT: FeeRule(fixed=50, bps=100)}))
        shop = gopay.register("till@shop.example", kind="company", business_name="Corner Shop",
                              category="merchant")
        gopay.fund(shop, 10_000)
        schedule(gopay, shop)
        order = pay_out(gopay, shop)
        assert order.amount == 9_851  # 9_851 + 50 + 99 (1% rounded) = 10_000
        assert gopay.wallet(shop).available == 0


class TestThePspsAnswer:
    def test_paid_money_leaves_and_a_failed_payout_gives_it_back(self, gopay: InMemoryGoPay,
                                                                 shop: User) -> None:
        """The PSP pays the open account; the closed account's payout releases the hold."""
        psp = FakePsp()
        gopay.fund(shop, 5_000)
        schedule(gopay, shop)
        paid = settle(gopay, psp, pay_out(gopay, shop))
        assert paid.status == OrderStatus.SUCCEEDED and gopay.balance(shop) == 0
        schedule(gopay, shop, bank_account(gopay, shop, OTHER_IBAN))
        gopay.fund(shop, 2_000)
        gopay.clock.advance(days=1)
        failed = settle(gopay, psp, pay_out(gopay, shop))
        assert (failed.status, failed.failure_reason) == (OrderStatus.FAILED, "account_closed")
        assert (gopay.wallet(shop).balance, gopay.wallet(shop).held) == (2_000, 0)
        gopay.check_books()
