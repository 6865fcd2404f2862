"""Bills: staff set up a biller, customers pay it with their reference, and GoPay settles it by payout."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from gopay.aggregates.biller import Biller
from gopay.aggregates.errors import (
    AccountFrozen,
    CurrencyMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidState,
    NotFound,
    ValidationFailed,
)
from gopay.aggregates.fees import FeeRule
from gopay.aggregates.ledger import SystemAccount, TransactionType
from gopay.aggregates.limits import LimitExceeded
from gopay.aggregates.money import Money
from gopay.aggregates.payment_method import PaymentMethod
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder
from gopay.aggregates.psp_task import PspTask
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.commands.bill_payments import PayBill
from gopay.commands.biller_settlements import SettleBiller
from gopay.commands.billers import BankAccountDetails, CreateBiller, SetBillerBankAccount
from gopay.commands.payment_methods import reveal
from gopay.commands.staff import SetFrozen
from gopay.processes.psp import PspProcess
from gopay.psp.port import (
    BankAccount,
    Destination,
    OperationKind,
    OperationStatus,
    PspNoAnswer,
    PspResult,
)
from tests.unit.commands.in_memory import InMemoryGoPay, settings, wallet_id

IBAN, OTHER_IBAN = "DE89370400440532013000", "GB82WEST12345698765432"
FEES = SystemAccount.FEES.account_id("USD")
PAYOUT_CLEARING = SystemAccount.PAYOUT_CLEARING.account_id("USD")


class FakePsp:
    """A PSP that pays out to any IBAN but the closed one, keeping 25 a payout; or never answers."""

    def __init__(self) -> None:
        self.payouts: dict[str, tuple[int, str]] = {}
        self.answering = True

    def payout(self, nonce: str, amount: int, currency: str, destination: Destination) -> PspResult:
        if not self.answering:
            raise PspNoAnswer("the line is down")
        assert isinstance(destination, BankAccount)
        self.payouts.setdefault(nonce, (amount, destination.iban))
        return self._result(nonce)

    def status(self, nonce: str) -> PspResult | None:
        return self._result(nonce) if nonce in self.payouts else None

    def _result(self, nonce: str) -> PspResult:
        amount, iban = self.payouts[nonce]
        closed = iban == OTHER_IBAN
        return PspResult(nonce=nonce, kind=OperationKind.PAYOUT,
                         status=OperationStatus.FAILED if closed else OperationStatus.SUCCEEDED,
                         psp_reference=f"po_{nonce[:8]}", amount=amount, currency="USD",
                         fee=0 if closed else 25,
                         failure_reason="account_closed" if closed else None)


@pytest.fixture
def gopay() -> InMemoryGoPay:
    """Bill payments cost the payer 30."""
    return InMemoryGoPay(settings(fees={TransactionType.BILL_PAYMENT: FeeRule(fixed=30)}))


@pytest.fixture
def power(gopay: InMemoryGoPay) -> Biller:
    return gopay.run(CreateBiller(staff_id=gopay.admin.id, name="City Power",
                                  category="electricity",
                                  bank_account=BankAccountDetails(IBAN, "City Power Ltd")))


@pytest.fixture
def ada(gopay: InMemoryGoPay) -> User:
    ada = gopay.register("ada@example.com")
    gopay.fund(ada, 5_000)
    return ada


def pay(gopay: InMemoryGoPay, payer: User, biller_id: UUID, amount: int,
        reference: str = "ACC-1001", key: str | None = None,
        currency: str = "USD") -> PaymentOrder:
    return gopay.run(PayBill(caller_id=payer.id, wallet_id=wallet_id(payer), biller_id=biller_id,
                             customer_reference=reference, money=Money(amount, currency),
                             idempotency_key=key, fingerprint=f"{amount}/{reference}"))


def payable(gopay: InMemoryGoPay, biller: Biller) -> Wallet:
    return gopay.app.get(biller.wallet_id, Wallet)


def settle(gopay: InMemoryGoPay, psp: FakePsp, biller: Biller, amount: int | None = None,
           key: str | None = None) -> PaymentOrder:
    """What `POST /v1/admin/billers/{id}/settlements` does: the order, then the PSP asked at once."""
    order = gopay.run(SettleBiller(caller_id=gopay.admin.id, biller_id=biller.id,
                                   money=Money(amount, "USD") if amount else None,
                                   idempotency_key=key, fingerprint=str(amount)))
    if order.status == OrderStatus.PENDING:
        process(gopay, psp).attempt(PspTask.id_for_call(order.id), first=True)
    return gopay.order(order.id)


def process(gopay: InMemoryGoPay, psp: FakePsp) -> PspProcess:
    return PspProcess(gopay.commands, psp, due=lambda limit: [])  # type: ignore[arg-type]  # payouts only


class TestSettingUpBillers:
    def test_a_biller_has_an_empty_payable_account_of_its_own(self, gopay: InMemoryGoPay,
                                                              power: Biller) -> None:
        """The payable account is a wallet owned by the biller, in the biller's currency."""
        account = payable(gopay, power)
        assert (account.owner_id, account.currency, account.balance) == (power.id, "USD", 0)
        assert (power.name, power.category, power.bank_account_shown) == (
            "City Power", "electricity", "DE ...3000")

    def test_the_iban_is_in_the_vault_not_in_the_events(self, gopay: InMemoryGoPay,
                                                        power: Biller) -> None:
        """The bank account is a payment method of the biller's; only the PSP call opens it."""
        assert power.bank_account_id is not None
        method = gopay.app.get(power.bank_account_id, PaymentMethod)
        assert (method.owner_id, method.method_type) == (power.id, "bank_account")
        assert reveal(gopay.context, power.id, method.id, "bank_account") == IBAN
        assert IBAN not in repr([vars(e) for e in gopay.all_events()])

    def test_a_repeated_key_sets_up_one_biller(self, gopay: InMemoryGoPay) -> None:
        def create(name: str) -> Biller:
            return gopay.run(CreateBiller(staff_id=gopay.admin.id, name=name, category="water",
                                          idempotency_key="k", fingerprint=name))

        first = create("Aqua")
        assert create("Aqua").id == first.id
        with pytest.raises(IdempotencyConflict):
            create("Aqua Two")

    def test_a_bad_iban_sets_up_nothing(self, gopay: InMemoryGoPay) -> None:
        admin = gopay.admin
        before = gopay.head()
        with pytest.raises(ValidationFailed, match="mod-97"):
            gopay.run(CreateBiller(staff_id=admin.id, name="Gas Co", category="gas",
                                   bank_account=BankAccountDetails("DE00370400440532013000", "G")))
        assert gopay.head() == before

    def test_the_bank_account_can_be_changed_and_the_same_one_again_changes_nothing(
            self, gopay: InMemoryGoPay, power: Biller) -> None:
        first = power.bank_account_id
        same = gopay.run(SetBillerBankAccount(staff_id=gopay.admin.id, biller_id=power.id,
                                              bank_account=BankAccountDetails(IBAN, "City Power")))
        assert same.bank_account_id == first
        changed = gopay.run(SetBillerBankAccount(
            staff_id=gopay.admin.id, biller_id=power.id,
            bank_account=BankAccountDetails(OTHER_IBAN, "City Power")))
        assert changed.bank_account_id != first and changed.bank_account_shown == "GB ...5432"
        assert first is not None and gopay.app.get(first, PaymentMethod).removed

    def test_an_unknown_biller_has_no_bank_account_to_set(self, gopay: InMemoryGoPay) -> None:
        with pytest.raises(NotFound):
            gopay.run(SetBillerBankAccount(staff_id=gopay.admin.id, biller_id=uuid4(),
                                           bank_account=BankAccountDetails(IBAN, "Nobody")))


class TestPayingBills:
    def test_the_payable_account_is_credited_with_the_customer_reference(
            self, gopay: InMemoryGoPay, power: Biller, ada: User) -> None:
        """One entry: the payer pays the bill and the fee, the biller's account gets the bill."""
        order = pay(gopay, ada, power.id, 1_200, reference="INV-77")
        assert (order.status, order.order_type, order.note) == (
            OrderStatus.SUCCEEDED, TransactionType.BILL_PAYMENT, "INV-77")
        assert gopay.balance(ada) == 5_000 - 1_200 - 30
        assert payable(gopay, power).balance == 1_200
        assert {(p.account_id, p.amount) for p in order.postings} == {
            (wallet_id(ada), -1_230), (power.wallet_id, 1_200), (FEES, 30)}
        [debit] = [e for e in gopay.events(wallet_id(ada))
                   if isinstance(e, Wallet.Debited) and e.entry_type == TransactionType.BILL_PAYMENT]
        assert (debit.counterparty, debit.reference) == (str(power.wallet_id), "INV-77")
        [credit] = [e for e in gopay.events(power.wallet_id) if isinstance(e, Wallet.Credited)]
        assert (credit.counterparty, credit.reference) == (str(wallet_id(ada)), "INV-77")
        gopay.check_books()

    def test_no_tier_caps_what_a_biller_is_owed(self, gopay: InMemoryGoPay, power: Biller) -> None:
        """Many payers together pass any one wallet's balance limit (100,000 unverified)."""
        for n in range(12):
            payer = gopay.register(f"payer{n}@example.com")
            gopay.fund(payer, 9_999)
            pay(gopay, payer, power.id, 9_900)
        assert payable(gopay, power).balance == 12 * 9_900 > 100_000

    def test_the_payers_limits_apply(self, gopay: InMemoryGoPay, power: Biller) -> None:
        rich = gopay.register("rich@example.com")
        gopay.fund(rich, 50_000)
        with pytest.raises(LimitExceeded):
            pay(gopay, rich, power.id, 10_001)
        assert payable(gopay, power).balance == 0

    def test_not_enough_money_pays_nothing(self, gopay: InMemoryGoPay, power: Biller,
                                           ada: User) -> None:
        with pytest.raises(InsufficientFunds):
            pay(gopay, ada, power.id, 4_990)  # 4,990 + 30 of fee > 5,000
        assert (gopay.balance(ada), payable(gopay, power).balance) == (5_000, 0)

    def test_a_frozen_wallet_pays_no_bill(self, gopay: InMemoryGoPay, power: Biller,
                                          ada: User) -> None:
        gopay.run(SetFrozen(staff_id=gopay.admin.id, user_id=ada.id, frozen=True, reason="x"))
        with pytest.raises(AccountFrozen):
            pay(gopay, ada, power.id, 100)

    def test_an_unknown_biller_or_another_currency_is_refused(self, gopay: InMemoryGoPay,
                                                              power: Biller, ada: User) -> None:
        with pytest.raises(NotFound):
            pay(gopay, ada, uuid4(), 100)
        with pytest.raises(NotFound):  # a wallet's id is not a biller's
            pay(gopay, ada, power.wallet_id, 100)
        with pytest.raises(CurrencyMismatch):
            pay(gopay, ada, power.id, 100, currency="EUR")
        with pytest.raises(ValidationFailed):
            pay(gopay, ada, power.id, 100, reference="  ")
        assert gopay.balance(ada) == 5_000

    def test_a_repeated_key_pays_once(self, gopay: InMemoryGoPay, power: Biller,
                                      ada: User) -> None:
        first = pay(gopay, ada, power.id, 500, key="bill-1")
        again = pay(gopay, ada, power.id, 500, key="bill-1")
        assert again.id == first.id
        assert (gopay.balance(ada), payable(gopay, power).balance) == (5_000 - 530, 500)
        with pytest.raises(IdempotencyConflict):
            pay(gopay, ada, power.id, 501, key="bill-1")


class TestSettlingBillers:
    @pytest.fixture
    def owed(self, gopay: InMemoryGoPay, power: Biller, ada: User) -> Biller:
        """Ada paid City Power 3,000."""
        pay(gopay, ada, power.id, 3_000)
        return power

    def test_what_is_owed_is_paid_out_to_the_bank_account(self, gopay: InMemoryGoPay,
                                                          owed: Biller) -> None:
        """All that is available leaves through payout clearing; the PSP's fee is GoPay's cost."""
        psp = FakePsp()
        order = settle(gopay, psp, owed)
        assert (order.status, order.order_type, order.amount) == (
            OrderStatus.SUCCEEDED, TransactionType.SETTLEMENT, 3_000)
        assert psp.payouts == {str(order.id): (3_000, IBAN)}
        account = payable(gopay, owed)
        assert (account.balance, account.held) == (0, 0)
        assert {(p.account_id, p.amount) for p in order.postings} == {
            (owed.wallet_id, -3_000), (PAYOUT_CLEARING, 3_000 + 25), (FEES, -25)}
        gopay.check_books()

    def test_a_failed_payout_gives_the_money_back_to_the_payable_account(
            self, gopay: InMemoryGoPay, owed: Biller) -> None:
        gopay.run(SetBillerBankAccount(staff_id=gopay.admin.id, biller_id=owed.id,
                                       bank_account=BankAccountDetails(OTHER_IBAN, "Power")))
        order = settle(gopay, FakePsp(), owed, 1_000)
        assert (order.status, order.failure_reason) == (OrderStatus.FAILED, "account_closed")
        account = payable(gopay, owed)
        assert (account.balance, account.held) == (3_000, 0)

    def test_while_the_psp_is_silent_the_money_is_held(self, gopay: InMemoryGoPay,
                                                       owed: Biller) -> None:
        """No answer: pending and held, so a second settlement cannot pay the same money."""
        psp = FakePsp()
        psp.answering = False
        order = settle(gopay, psp, owed)
        assert order.status == OrderStatus.PENDING
        assert payable(gopay, owed).available == 0
        with pytest.raises(InvalidState, match="nothing is owed"):
            settle(gopay, psp, owed)
        psp.answering = True
        process(gopay, psp).attempt(PspTask.id_for_call(order.id))
        assert gopay.order(order.id).status == OrderStatus.SUCCEEDED
        assert len(psp.payouts) == 1

    def test_more_than_is_owed_is_refused(self, gopay: InMemoryGoPay, owed: Biller) -> None:
        with pytest.raises(InsufficientFunds):
            settle(gopay, FakePsp(), owed, 3_001)

    def test_without_a_bank_account_nothing_is_settled(self, gopay: InMemoryGoPay,
                                                       ada: User) -> None:
        bare = gopay.run(CreateBiller(staff_id=gopay.admin.id, name="Net", category="internet"))
        pay(gopay, ada, bare.id, 100)
        with pytest.raises(InvalidState, match="no bank account"):
            settle(gopay, FakePsp(), bare)
