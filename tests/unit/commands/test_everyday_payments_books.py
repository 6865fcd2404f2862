"""Whatever people, merchants, billers and operators do, every wallet and GoPay account is what a model says.

A hypothesis state machine on the in-memory GoPay, beside `test_agent_and_request_books.py`
(agents and payment requests): merchants make fixed and open-amount QR codes, people pay
them (also codes already paid or expired), merchants refund in part, in full and beyond;
people pay bills and buy airtime through an operators' gateway that serves, refuses or
goes silent; staff settle billers by payout through a PSP that charges a fee, move their
bank accounts to a closed one, fund and correct wallets and freeze people; people transfer;
and idempotency keys are repeated, with the same request and with another. Fees are drawn
per flow (fixed, basis points, minimum, maximum, paid by the payer or the payee), in two
currencies.

The model predicts what every success moves, to the unit, from its own fee arithmetic;
refusals are part of the story but must move nothing. After every step: each wallet's
balance and hold is the model's, held never passes the balance and no balance is below
zero, every journal entry balances and the whole ledger sums to zero per currency, each
wallet equals its postings and its lines, GoPay's fees, adjustments and payout-clearing
accounts are the model's, a fixed code is paid at most once, a payment's refunds never
pass it, and a repeated key answers its first outcome and moves nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from gopay.aggregates.biller import Biller
from gopay.aggregates.errors import DomainError, IdempotencyConflict, InvalidState, NotFound
from gopay.aggregates.fees import FeePayer, FeeRule
from gopay.aggregates.ledger import Posting, SystemAccount, TransactionType
from gopay.aggregates.mobile_operator import MobileOperator
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder
from gopay.aggregates.psp_task import PspTask
from gopay.aggregates.qr_code import QrAlreadyPaid, QrCode, QrExpired
from gopay.aggregates.refunds import PaymentRefunds, RefundTooLarge
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.commands.adjustment import Adjust, Direction
from gopay.commands.bill_payments import PayBill
from gopay.commands.biller_settlements import SettleBiller
from gopay.commands.billers import BankAccountDetails, CreateBiller, SetBillerBankAccount
from gopay.commands.mobile_operators import AddOperator
from gopay.commands.money_flow import MoneyCommand
from gopay.commands.qr_payments import CreateQrCode, PayQrCode
from gopay.commands.recharges import RequestRecharge
from gopay.commands.refunds import RefundPayment
from gopay.commands.staff import SetFrozen
from gopay.commands.transfer import Transfer
from gopay.processes.psp import PspProcess
from gopay.psp.port import OperationKind, OperationStatus, PspNoAnswer, PspResult
from tests.fake_psp import FakePsp, Fault
from tests.unit.commands.in_memory import InMemoryGoPay, wallet_id
from tests.unit.commands.in_memory import settings as gopay_settings

CURRENCIES = ("USD", "EUR")
# Two people in each currency; a merchant, a biller and an operator in each.
PEOPLE = (("ada", "USD"), ("bob", "USD"), ("cy", "EUR"), ("dee", "EUR"))
OPENING = 20_000
OPEN_IBAN, CLOSED_IBAN = "DE89370400440532013000", "GB33BUKB20201555555555"  # API.md's test accounts
PHONE, UNSERVED = "+14155550100", "+15550000000"
PSP_FEE = 25  # what the PSP keeps of every payout it makes
AMOUNTS = st.integers(1, 6_000)
PAYERS = st.integers(0, 63)  # see `_payer`
KEYS = st.sampled_from([None, None, None, "k1", "k2"])
FEE_TYPES = (TransactionType.TRANSFER, TransactionType.QR_PAYMENT, TransactionType.BILL_PAYMENT,
             TransactionType.RECHARGE)
# A refusal a keyed request records on a failed order, so that its repeat refuses again.
RECORDED = {"insufficient_funds", "account_frozen", "limit_exceeded"}
ACCOUNTS = (SystemAccount.FEES, SystemAccount.ADJUSTMENTS, SystemAccount.PAYOUT_CLEARING)


@st.composite
def fee_rules(draw: st.DrawFn) -> FeeRule:
    minimum = draw(st.sampled_from([0, 0, 10]))
    return FeeRule(fixed=draw(st.sampled_from([0, 5, 30])), bps=draw(st.integers(0, 250)),
                   minimum=minimum, maximum=draw(st.sampled_from([None, None, 60, 200])),
                   paid_by=draw(st.sampled_from(FeePayer)))


def fee_of(rule: FeeRule | None, amount: int) -> int:
    """The schedule's arithmetic, worked out again: half up, within minimum and maximum, never
    more than the amount."""
    if rule is None:
        return 0
    part = int((Decimal(amount) * rule.bps / 10_000).quantize(Decimal(1), ROUND_HALF_UP))
    fee = max(rule.minimum, rule.fixed + part)
    return min(fee if rule.maximum is None else min(fee, rule.maximum), amount)


class Operators:
    """The operators' gateway: one recharge per nonce, the unserved number fails; when
    `silent`, it does the work but its answer is lost."""

    def __init__(self) -> None:
        self.done: dict[str, tuple[str, int, str]] = {}
        self.silent = False

    def recharge(self, nonce: str, phone_number: str, operator: str, amount: int,
                 currency: str) -> PspResult:
        self.done.setdefault(nonce, (phone_number, amount, currency))
        if self.silent:
            raise PspNoAnswer("the gateway hung up")
        return self._result(nonce)

    def status(self, nonce: str) -> PspResult | None:
        return self._result(nonce) if nonce in self.done else None

    def _result(self, nonce: str) -> PspResult:
        phone, amount, currency = self.done[nonce]
        served = phone != UNSERVED
        return PspResult(nonce=nonce, kind=OperationKind.RECHARGE,
                         status=OperationStatus.SUCCEEDED if served else OperationStatus.FAILED,
                         psp_reference=f"rc_{nonce[:8]}", amount=amount, currency=currency, fee=0,
                         failure_reason=None if served else "number_not_served")


@dataclass
class Code:
    qr: QrCode
    paid_by: UUID | None = None  # the payment of a fixed-amount code


@dataclass
class Payment:
    """A QR payment a merchant may refund."""

    order_id: UUID
    merchant: User
    payer_wallet_id: UUID
    amount: int
    refunded: int = 0


@dataclass
class Deferred:
    """A recharge or a settlement: held now, moved (or released) when the other side answers."""

    order_id: UUID
    payer_wallet_id: UUID
    held: int
    moves: list[tuple[UUID | tuple[SystemAccount, str], int]]  # what success books


class EverydayPayments(RuleBasedStateMachine):
    """The story; see the module docstring."""

    @initialize(rules=st.tuples(*[fee_rules() for _ in FEE_TYPES]))
    def open_for_business(self, rules: tuple[FeeRule, ...]) -> None:
        self.rules = dict(zip(FEE_TYPES, rules, strict=True))
        self.gopay = InMemoryGoPay(gopay_settings(fees=self.rules))
        self.psp, self.operators = FakePsp(fee=PSP_FEE), Operators()
        self.process = PspProcess(self.gopay.commands, self.psp, due=lambda limit: [],
                                  operators=self.operators)
        self.balances: dict[UUID, int] = defaultdict(int)
        self.holds: dict[UUID, int] = defaultdict(int)
        self.accounts: dict[tuple[SystemAccount, str], int] = defaultdict(int)
        self.currency: dict[UUID, str] = {}
        self.frozen: set[UUID] = set()
        self.codes: list[Code] = []
        self.payments: list[Payment] = []
        self.pending: list[Deferred] = []
        # What the log says so far, read step by step (`the_ledger_balances_...`).
        self.read = 0
        self.ledger: dict[UUID, int] = defaultdict(int)
        self.ledger_total: dict[str, int] = defaultdict(int)
        self.lines: dict[UUID, int] = defaultdict(int)
        admin = self.gopay.admin
        self.people = [self._open(f"{name}@example.com", currency) for name, currency in PEOPLE]
        self.merchants = [self._open(f"till-{c.lower()}@shop.example", c, kind="company",
                                     business_name=f"Shop {c}", category="merchant")
                          for c in CURRENCIES]
        self.billers: list[Biller] = [self.gopay.run(CreateBiller(
            staff_id=admin.id, name=f"Power {c}", category="electricity", currency=c,
            bank_account=BankAccountDetails(OPEN_IBAN, "Power Ltd"))) for c in CURRENCIES]
        self.telcos: list[MobileOperator] = [self.gopay.run(AddOperator(staff_id=admin.id, name=f"Telco {c}",
                                                  country="US" if c == "USD" else "DE",
                                                  currency=c)) for c in CURRENCIES]
        for owner in (*self.billers, *self.telcos):
            self.currency[owner.wallet_id] = owner.currency
        for shop in self.merchants:  # a sticker at the till and a checkout, from the start
            self.make_a_code(0 if shop is self.merchants[0] else 1, False, 1, None, None)
            self.make_a_code(0 if shop is self.merchants[0] else 1, True, 1_500, None, None)

    def _open(self, email: str, currency: str, **fields: Any) -> User:
        user = self.gopay.register(email, currency=currency, **fields)
        self.currency[wallet_id(user)] = currency
        self._adjust(user, Direction.CREDIT, OPENING, None)
        return user

    # Running a money command and judging its answer

    def _move(self, step: str, command: MoneyCommand) -> PaymentOrder | DomainError | None:
        """Run a money command: its order or refusal when it is new; None for a repeated key,
        whose answer must be the first one's and which must move nothing."""
        earlier = (self.gopay.app.find(command.order_id, PaymentOrder)
                   if command.idempotency_key else None)
        before = self._wallets()
        try:
            answer: PaymentOrder | DomainError = self.gopay.run(command)
        except DomainError as refusal:
            answer = refusal
        outcome = answer.code if isinstance(answer, DomainError) else answer.status
        event(f"{step}: {'repeat, ' if earlier else ''}{outcome}")
        if earlier is not None:
            self._answers_as_before(earlier, command, answer)
            assert self._wallets() == before, f"a repeated {step} moved money"
            return None
        if isinstance(answer, DomainError):
            assert self._wallets() == before, f"a refused {step} ({answer.code}) moved money"
        return answer

    def _answers_as_before(self, earlier: PaymentOrder, command: MoneyCommand,
                           answer: PaymentOrder | DomainError) -> None:
        if command.fingerprint != earlier.request_fingerprint:
            assert isinstance(answer, IdempotencyConflict), answer
        elif (earlier.status == OrderStatus.FAILED and not earlier.planned_postings
              and earlier.failure_reason in RECORDED):
            assert isinstance(answer, DomainError) and answer.code == earlier.failure_reason, answer
        else:
            assert isinstance(answer, PaymentOrder) and answer.id == earlier.id, answer

    def _wallets(self) -> dict[UUID, tuple[int, int]]:
        """Every wallet's balance and hold."""
        return {wallet: (w.balance, w.held) for wallet in self.currency
                for w in [self.gopay.app.get(wallet, Wallet)]}

    def _book(self, order_type: TransactionType, payer: UUID, payee: UUID, amount: int) -> None:
        """What the model expects a payment made at once to move, fee included."""
        self.balances[payer] -= amount + self._fee_split(order_type, amount)[0]
        self.balances[payee] += amount - self._fee_split(order_type, amount)[1]
        self.accounts[SystemAccount.FEES, self.currency[payer]] += sum(
            self._fee_split(order_type, amount))

    def _fee_split(self, order_type: TransactionType, amount: int) -> tuple[int, int]:
        """The fee the payer pays on top, and the fee taken out of what the payee receives."""
        rule = self.rules.get(order_type)
        fee = fee_of(rule, amount)
        return (fee, 0) if rule is None or rule.paid_by == FeePayer.PAYER else (0, fee)

    def _payer(self, currency: str, pick: int) -> User:
        """A person of `currency`, or one time in eight anyone (then refused unless it fits)."""
        if pick % 8 == 7:
            return self.people[pick // 8 % len(self.people)]
        return [p for p in self.people if self.currency[wallet_id(p)] == currency][pick % 2]

    def _can_pay(self, payer: UUID, currency: str) -> None:
        """What every successful payment needs: an unfrozen payer of the payment's currency."""
        assert payer not in self.frozen, "a frozen wallet paid"
        assert self.currency[payer] == currency, "a payment across currencies"

    # Merchants and QR codes

    @rule(merchant=st.integers(0, 1), fixed=st.booleans(), amount=AMOUNTS,
          minutes=st.sampled_from([None, None, 2, 30]), key=KEYS)
    def make_a_code(self, merchant: int, fixed: bool, amount: int, minutes: int | None,
                    key: str | None) -> None:
        shop = self.merchants[merchant]
        expires_in = timedelta(minutes=minutes) if minutes else None
        try:
            qr = self.gopay.run(CreateQrCode(
                merchant_id=shop.id, amount=amount if fixed else None,
                reference=f"order {len(self.codes)}", expires_in=expires_in, idempotency_key=key,
                fingerprint=f"{fixed and amount}/{minutes}"))
        except IdempotencyConflict:
            event("code: idempotency_conflict")
            return
        if all(code.qr.id != qr.id for code in self.codes):
            self.codes.append(Code(qr))

    @rule(payer=PAYERS, which=st.integers(0, 10**6), amount=AMOUNTS, key=KEYS)
    def pay_a_code(self, payer: int, which: int, amount: int, key: str | None) -> None:
        if not self.codes:
            return
        code = self.codes[which % len(self.codes)]
        terms, person = code.qr.terms, self._payer(code.qr.currency, payer)
        fixed = terms.amount is not None
        answer = self._move("qr payment", PayQrCode(
            caller_id=person.id, payer_wallet_id=wallet_id(person), terms=terms,
            amount=None if fixed else amount, idempotency_key=key,
            fingerprint=f"{code.qr.id}/{amount}"))
        expired = terms.expires_at is not None and self.gopay.clock() >= terms.expires_at
        if answer is None:
            return
        if expired:
            assert isinstance(answer, QrExpired), answer
        elif fixed and code.paid_by is not None:
            assert isinstance(answer, QrAlreadyPaid), answer
            assert answer.details == {"payment_id": str(code.paid_by)}
        if isinstance(answer, PaymentOrder):
            self._can_pay(wallet_id(person), terms.currency)
            paid = terms.amount or amount
            assert answer.amount == paid
            self._book(TransactionType.QR_PAYMENT, wallet_id(person), terms.merchant_wallet_id, paid)
            if fixed:
                code.paid_by = answer.id
            merchant = next(m for m in self.merchants if m.wallet_id == terms.merchant_wallet_id)
            self.payments.append(Payment(answer.id, merchant, wallet_id(person), paid))

    @rule(which=st.integers(0, 10**6), amount=st.one_of(st.none(), AMOUNTS), key=KEYS,
          by_the_other=st.sampled_from([False] * 7 + [True]))
    def refund(self, which: int, amount: int | None, key: str | None, by_the_other: bool) -> None:
        """All that is left, or a part (perhaps more than is left); now and then by the merchant
        that was not paid."""
        if not self.payments:
            return
        payment = self.payments[which % len(self.payments)]
        merchant = (next(m for m in self.merchants if m is not payment.merchant) if by_the_other
                    else payment.merchant)
        answer = self._move("refund", RefundPayment(
            caller_id=merchant.id, merchant_wallet_id=wallet_id(merchant),
            payment_id=payment.order_id, amount=amount, idempotency_key=key,
            fingerprint=f"{payment.order_id}/{amount}"))
        if answer is None:
            return
        left = payment.amount - payment.refunded
        if by_the_other:
            assert isinstance(answer, NotFound), answer
        elif (amount or left or 1) > left:
            assert isinstance(answer, RefundTooLarge), answer
            assert answer.details == {"refundable": left}
        if isinstance(answer, PaymentOrder):
            assert wallet_id(merchant) not in self.frozen and answer.amount == (amount or left)
            self.balances[wallet_id(merchant)] -= answer.amount
            self.balances[payment.payer_wallet_id] += answer.amount
            payment.refunded += answer.amount

    # Bills and their settlement

    @rule(payer=PAYERS, biller=st.integers(0, 1), amount=AMOUNTS, key=KEYS)
    def pay_a_bill(self, payer: int, biller: int, amount: int, key: str | None) -> None:
        to = self.billers[biller]
        person = self._payer(to.currency, payer)
        answer = self._move("bill", PayBill(
            caller_id=person.id, wallet_id=wallet_id(person), biller_id=to.id,
            customer_reference="ACC-1001", money=Money(amount, to.currency), idempotency_key=key,
            fingerprint=f"{to.id}/{amount}"))
        if isinstance(answer, PaymentOrder):
            self._can_pay(wallet_id(person), to.currency)
            self._book(TransactionType.BILL_PAYMENT, wallet_id(person), to.wallet_id, amount)

    @rule(biller=st.integers(0, 1), part=st.one_of(st.none(), st.integers(1, 3_000)),
          lost=st.sampled_from([False, False, True]), key=KEYS)
    def settle_a_biller(self, biller: int, part: int | None, lost: bool, key: str | None) -> None:
        """All it is owed, or a part; the PSP pays (or finds the account closed) and answers,
        or its answer is lost and the money stays held."""
        to = self.billers[biller]
        available = self.balances[to.wallet_id] - self.holds[to.wallet_id]
        answer = self._move("settlement", SettleBiller(
            caller_id=self.gopay.admin.id, biller_id=to.id,
            money=Money(part, to.currency) if part else None, idempotency_key=key,
            fingerprint=f"{to.id}/{part}"))
        if answer is None:
            return
        if part is None and not available:
            assert isinstance(answer, InvalidState), answer
        if isinstance(answer, PaymentOrder):
            assert answer.status == OrderStatus.PENDING and answer.amount == (part or available)
            assert answer.amount <= available
            currency = to.currency
            self._defer(answer, to.wallet_id, answer.amount, [
                (to.wallet_id, -answer.amount),
                ((SystemAccount.PAYOUT_CLEARING, currency), answer.amount + PSP_FEE),
                ((SystemAccount.FEES, currency), -PSP_FEE)])
            if lost:
                self.psp.fault_next("payout", Fault.LOST_ANSWER)
            self.process.attempt(PspTask.id_for_call(answer.id), first=True)
            self._learn_outcomes()

    @rule(biller=st.integers(0, 1), closed=st.booleans())
    def move_a_biller_s_bank_account(self, biller: int, closed: bool) -> None:
        """A closed account makes its settlements fail, and their money goes back."""
        self.gopay.run(SetBillerBankAccount(
            staff_id=self.gopay.admin.id, biller_id=self.billers[biller].id,
            bank_account=BankAccountDetails(CLOSED_IBAN if closed else OPEN_IBAN, "Power Ltd")))

    # Airtime

    @rule(payer=PAYERS, telco=st.integers(0, 1), amount=AMOUNTS,
          answer=st.sampled_from(["served", "served", "unserved", "silent"]), key=KEYS)
    def recharge(self, payer: int, telco: int, amount: int, answer: str, key: str | None) -> None:
        operator = self.telcos[telco]
        person = self._payer(operator.currency, payer)
        phone = UNSERVED if answer == "unserved" else PHONE
        order = self._move("recharge", RequestRecharge(
            caller_id=person.id, wallet_id=wallet_id(person), operator_id=operator.id,
            phone_number=phone, money=Money(amount, operator.currency), idempotency_key=key,
            fingerprint=f"{operator.id}/{amount}/{phone}"))
        if not isinstance(order, PaymentOrder):
            return
        self._can_pay(wallet_id(person), operator.currency)
        if order.status == OrderStatus.FAILED:  # a keyed refusal, recorded
            assert order.failure_reason in RECORDED and not order.planned_postings
            return
        assert order.status == OrderStatus.PENDING
        payer_fee, payee_fee = self._fee_split(TransactionType.RECHARGE, amount)
        self._defer(order, wallet_id(person), amount + payer_fee, [
            (wallet_id(person), -amount - payer_fee), (operator.wallet_id, amount - payee_fee),
            ((SystemAccount.FEES, operator.currency), payer_fee + payee_fee)])
        self.operators.silent = answer == "silent"
        try:
            self.process.attempt(PspTask.id_for_call(order.id), first=True)
        finally:
            self.operators.silent = False
        self._learn_outcomes()

    @rule()
    def the_lost_answers_are_found(self) -> None:
        """The PSP process tries again: it asks for the status first and settles what it learns."""
        for deferred in self.pending:
            self.process.attempt(PspTask.id_for_call(deferred.order_id))
        self._learn_outcomes()
        assert not self.pending, "an answer asked for again is still unknown"

    def _defer(self, order: PaymentOrder, payer: UUID, held: int,
               moves: list[tuple[UUID | tuple[SystemAccount, str], int]]) -> None:
        self.holds[payer] += held
        self.pending.append(Deferred(order.id, payer, held, moves))

    def _learn_outcomes(self) -> None:
        """What the model expects once a deferred order ends: its moves, or nothing; no hold."""
        for deferred in list(self.pending):
            order = self.gopay.order(deferred.order_id)
            if order.status == OrderStatus.PENDING:
                continue
            event(f"deferred: {order.status} {order.failure_reason or ''}".strip())
            self.pending.remove(deferred)
            self.holds[deferred.payer_wallet_id] -= deferred.held
            if order.status == OrderStatus.SUCCEEDED:
                for account, amount in deferred.moves:
                    if isinstance(account, UUID):
                        self.balances[account] += amount
                    else:
                        self.accounts[account] += amount

    # Transfers, corrections, freezes, time

    @rule(sender=st.integers(0, 5), recipient=PAYERS, amount=AMOUNTS, key=KEYS)
    def transfer(self, sender: int, recipient: int, amount: int, key: str | None) -> None:
        """From a person or a merchant to a person, mostly of one currency."""
        payer = (self.people + self.merchants)[sender]
        currency = self.currency[wallet_id(payer)]
        payee = self._payer(currency, recipient)
        answer = self._move("transfer", Transfer(
            caller_id=payer.id, sender_wallet_id=wallet_id(payer), recipient=payee.email,
            money=Money(amount, currency), idempotency_key=key,
            fingerprint=f"{payee.email}/{amount}"))
        if isinstance(answer, PaymentOrder):
            self._can_pay(wallet_id(payer), self.currency[wallet_id(payee)])
            assert payer is not payee
            self._book(TransactionType.TRANSFER, wallet_id(payer), wallet_id(payee), amount)

    @rule(who=st.integers(0, 5), credit=st.booleans(), amount=AMOUNTS, key=KEYS)
    def adjust(self, who: int, credit: bool, amount: int, key: str | None) -> None:
        user = (self.people + self.merchants)[who]
        self._adjust(user, Direction.CREDIT if credit else Direction.DEBIT, amount, key)

    def _adjust(self, user: User, direction: Direction, amount: int, key: str | None) -> None:
        wallet = wallet_id(user)
        answer = self._move("adjustment", Adjust(
            caller_id=self.gopay.admin.id, wallet_id=wallet, direction=direction,
            money=Money(amount, self.currency[wallet]), reason="correction", idempotency_key=key,
            fingerprint=f"{wallet}/{direction}/{amount}"))
        if isinstance(answer, PaymentOrder):
            sign = 1 if direction == Direction.CREDIT else -1
            self.balances[wallet] += sign * amount
            self.accounts[SystemAccount.ADJUSTMENTS, self.currency[wallet]] -= sign * amount

    @rule(who=st.integers(0, 5), freeze=st.integers(0, 3))
    def freeze_or_unfreeze(self, who: int, freeze: int) -> None:
        """Freeze someone now and then; mostly unfreeze (a no-op for the unfrozen)."""
        user = (self.people + self.merchants)[who]
        self.gopay.run(SetFrozen(staff_id=self.gopay.admin.id, user_id=user.id,
                                 frozen=freeze == 0, reason="story"))
        (self.frozen.add if freeze == 0 else self.frozen.discard)(wallet_id(user))

    @rule(minutes=st.sampled_from([1, 3, 16]))
    def time_passes(self, minutes: int) -> None:
        self.gopay.clock.advance(minutes=minutes)

    # What must hold after every step

    @invariant()
    def every_wallet_is_what_the_model_says(self) -> None:
        if not hasattr(self, "gopay"):
            return
        for wallet, (balance, held) in self._wallets().items():
            assert (balance, held) == (self.balances[wallet], self.holds[wallet]), (
                wallet, balance, held, self.balances[wallet], self.holds[wallet])
            assert 0 <= held <= balance

    @invariant()
    def the_ledger_balances_and_agrees_with_every_wallet_s_lines(self) -> None:
        """Read what the log gained since the last step (a step's check stays cheap)."""
        if not hasattr(self, "gopay"):
            return
        for notification in self.gopay.app.recorder.select_notifications(
                start=self.read + 1, limit=10**9):
            self.read = notification.id
            event_ = self.gopay.app.mapper.to_domain_event(notification)
            if isinstance(event_, PaymentOrder.Succeeded | PaymentOrder.Reversed):
                entry = [Posting.from_record(record) for record in event_.postings]
                for currency in CURRENCIES:
                    assert not sum(p.amount for p in entry if p.currency == currency), entry
                for posting in entry:
                    self.ledger[posting.account_id] += posting.amount
                    self.ledger_total[posting.currency] += posting.amount
            elif isinstance(event_, Wallet.Credited):
                self.lines[event_.originator_id] += event_.amount
            elif isinstance(event_, Wallet.Debited | Wallet.Captured):
                self.lines[event_.originator_id] -= event_.amount
        assert not any(self.ledger_total.values()), dict(self.ledger_total)
        for wallet, (balance, _) in self._wallets().items():
            assert balance == self.ledger[wallet] == self.lines[wallet], (
                wallet, balance, self.ledger[wallet], self.lines[wallet])
        for account in ACCOUNTS:
            for currency in CURRENCIES:
                assert self.ledger[account.account_id(currency)] == self.accounts[
                    account, currency], (account, currency)

    def teardown(self) -> None:
        """The books checked once more from the whole log, orders' states included."""
        if hasattr(self, "gopay"):
            self.gopay.check_books()

    @invariant()
    def codes_are_paid_once_and_refunds_stay_within_their_payments(self) -> None:
        if not hasattr(self, "gopay"):
            return
        for code in self.codes:
            assert self.gopay.app.get(code.qr.id, QrCode).payment_id == code.paid_by
        for payment in self.payments:
            refunds = self.gopay.app.find(PaymentRefunds.id_for(payment.order_id), PaymentRefunds)
            refunded = refunds.refunded if refunds else 0
            assert refunded == payment.refunded <= payment.amount


EverydayPayments.TestCase.settings = settings(
    max_examples=50, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestEverydayPaymentsKeepTheBooks = EverydayPayments.TestCase
