"""Person-to-person transfers: all of the money or none of it, once per key, fees in the same entry."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from gopay.aggregates.errors import (
    AccountFrozen,
    CurrencyMismatch,
    DomainError,
    IdempotencyConflict,
    InsufficientFunds,
    NotFound,
    ValidationFailed,
)
from gopay.aggregates.fees import FeePayer, FeeRule
from gopay.aggregates.ledger import Posting, SystemAccount, TransactionType
from gopay.aggregates.limits import LimitExceeded
from gopay.aggregates.money import Money
from gopay.aggregates.payment_order import OrderStatus, PaymentOrder, order_id_for
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.commands.adjustment import Adjust, Direction
from gopay.commands.sign_in import SignIn
from gopay.commands.staff import SetFrozen
from gopay.commands.transfer import Transfer
from tests.unit.commands.in_memory import InMemoryGoPay, settings, wallet_id

FEES = SystemAccount.FEES.account_id("USD")


@pytest.fixture
def ada(gopay: InMemoryGoPay) -> User:
    ada = gopay.register("ada@example.com", phone="+442071234567")
    gopay.fund(ada, 5_000)
    return ada


@pytest.fixture
def grace(gopay: InMemoryGoPay) -> User:
    return gopay.register("grace@example.com", phone="+14155550123")


def lines(gopay: InMemoryGoPay, user: User) -> list[tuple[str, str, int]]:
    """The wallet's history after its opening: (event, entry type, amount)."""
    return [(type(e).__name__, e.entry_type, e.amount) for e in gopay.events(wallet_id(user))
            if isinstance(e, Wallet.Debited | Wallet.Credited)]


class TestMovingMoney:
    def test_money_moves_from_one_wallet_to_the_other(self, gopay: InMemoryGoPay, ada: User,
                                                      grace: User) -> None:
        """The order succeeds with one balanced entry: the payer out, the payee in."""
        order = gopay.transfer(ada, "grace@example.com", 1_250, note="lunch")
        assert (order.status, order.order_type, order.amount) == (
            OrderStatus.SUCCEEDED, TransactionType.TRANSFER, 1_250)
        assert order.postings == (Posting(wallet_id(ada), -1_250, "USD"),
                                  Posting(wallet_id(grace), 1_250, "USD"))
        assert (gopay.balance(ada), gopay.balance(grace)) == (3_750, 1_250)
        gopay.check_books()

    def test_a_keyless_transfer_run_again_after_its_commit_landed_moves_once(
            self, gopay: InMemoryGoPay, ada: User, grace: User) -> None:
        """A commit whose answer was lost (a failover) makes the committer run the command
        again: without a key, its own order is found and nothing moves twice."""
        command = Transfer(caller_id=ada.id, sender_wallet_id=wallet_id(ada),
                           recipient="grace@example.com", money=Money(700, "USD"))
        first = gopay.run(command)
        again = gopay.run(command)
        assert again.id == first.id
        assert (gopay.balance(ada), gopay.balance(grace)) == (4_300, 700)

    def test_each_wallet_records_its_line_with_the_other_side(self, gopay: InMemoryGoPay,
                                                              ada: User, grace: User) -> None:
        """The lines name the order, the other wallet, the note and the balance after."""
        order = gopay.transfer(ada, "grace@example.com", 1_250, note="lunch")
        debited = gopay.events(wallet_id(ada))[-1]
        credited = gopay.events(wallet_id(grace))[-1]
        assert isinstance(debited, Wallet.Debited) and isinstance(credited, Wallet.Credited)
        assert (debited.entry_id, debited.counterparty, debited.reference, debited.balance_after) \
            == (order.id, str(grace.wallet_id), "lunch", 3_750)
        assert (credited.entry_id, credited.counterparty, credited.balance_after) == (
            order.id, str(ada.wallet_id), 1_250)

    @pytest.mark.parametrize("recipient", ["grace@example.com", " GRACE@example.com ",
                                           "+14155550123", "wallet id"])
    def test_the_recipient_is_found_by_email_phone_or_wallet_id(self, gopay: InMemoryGoPay,
                                                                ada: User, grace: User,
                                                                recipient: str) -> None:
        recipient = str(grace.wallet_id) if recipient == "wallet id" else recipient
        gopay.transfer(ada, recipient, 100)
        assert gopay.balance(grace) == 100

    @pytest.mark.parametrize("recipient", ["nobody@example.com", "+19999999999",
                                           "7c1f0d2e-1b5a-4f62-9a53-3e0c5a0d9b11", "grace", ""])
    def test_an_unknown_recipient_is_not_found(self, gopay: InMemoryGoPay, ada: User, grace: User,
                                               recipient: str) -> None:
        with pytest.raises(NotFound, match="no GoPay wallet"):
            gopay.transfer(ada, recipient, 100)
        assert gopay.balance(ada) == 5_000

    def test_a_staff_member_has_no_wallet_to_receive_in(self, gopay: InMemoryGoPay, ada: User) -> None:
        with pytest.raises(NotFound):
            gopay.transfer(ada, gopay.admin.email, 100)

    @pytest.mark.parametrize("recipient", ["ada@example.com", "+442071234567", "wallet id"])
    def test_nobody_sends_money_to_themselves(self, gopay: InMemoryGoPay, ada: User,
                                              recipient: str) -> None:
        """However the recipient is named, the sender's own wallet is refused."""
        recipient = str(ada.wallet_id) if recipient == "wallet id" else recipient
        with pytest.raises(ValidationFailed, match="yourself"):
            gopay.transfer(ada, recipient, 100, idempotency_key="self")
        assert gopay.app.find(order_id_for(ada.id, "transfer", "self"), PaymentOrder) is None


class TestRefusals:
    def test_not_enough_money_moves_nothing(self, gopay: InMemoryGoPay, ada: User,
                                            grace: User) -> None:
        head = gopay.head()
        with pytest.raises(InsufficientFunds):
            gopay.transfer(ada, "grace@example.com", 5_001)
        assert (gopay.balance(ada), gopay.balance(grace), gopay.head()) == (5_000, 0, head)

    def test_a_frozen_wallet_cannot_send(self, gopay: InMemoryGoPay, ada: User, grace: User) -> None:
        gopay.run(SetFrozen(staff_id=gopay.admin.id, user_id=ada.id, frozen=True, reason="fraud"))
        with pytest.raises(AccountFrozen):
            gopay.transfer(ada, "grace@example.com", 100)
        assert gopay.balance(grace) == 0

    @pytest.mark.parametrize("amount", [0, -100])
    def test_only_a_positive_amount_moves(self, gopay: InMemoryGoPay, ada: User, grace: User,
                                          amount: int) -> None:
        with pytest.raises(ValidationFailed, match="greater than zero"):
            gopay.transfer(ada, "grace@example.com", amount)

    def test_money_in_another_currency_is_refused(self, gopay: InMemoryGoPay, ada: User,
                                                  grace: User) -> None:
        """A USD wallet sends USD only."""
        with pytest.raises(CurrencyMismatch):
            gopay.transfer(ada, "grace@example.com", 100, currency="EUR")

    def test_a_wallet_of_another_currency_cannot_receive(self, gopay: InMemoryGoPay,
                                                         ada: User) -> None:
        """There is no conversion: a EUR wallet does not take USD, and the sender keeps it."""
        gopay.register("pierre@example.com", currency="EUR")
        with pytest.raises(CurrencyMismatch):
            gopay.transfer(ada, "pierre@example.com", 100, idempotency_key="to-pierre")
        assert gopay.balance(ada) == 5_000
        # Not a ledger refusal: no order is left behind, so a corrected retry may use the key.
        assert gopay.app.find(order_id_for(ada.id, "transfer", "to-pierre"), PaymentOrder) is None


class TestLimits:
    """The unverified tier: 10,000 a payment, 30,000 a day, 100,000 in the wallet."""

    def test_one_payment_may_not_pass_the_tier_s_limit(self, gopay: InMemoryGoPay, ada: User,
                                                       grace: User) -> None:
        gopay.fund(ada, 20_000)
        with pytest.raises(LimitExceeded, match="at most 10000"):
            gopay.transfer(ada, "grace@example.com", 10_001)
        gopay.transfer(ada, "grace@example.com", 10_000)

    def test_a_day_s_payments_may_not_pass_its_limit(self, gopay: InMemoryGoPay, ada: User,
                                                     grace: User) -> None:
        """The day's allowance is used up, and the next day (on the story's clock) it is back."""
        gopay.fund(ada, 40_000)
        for _ in range(3):
            gopay.transfer(ada, "grace@example.com", 10_000)
        with pytest.raises(LimitExceeded, match="0 is left today"):
            gopay.transfer(ada, "grace@example.com", 1)
        gopay.clock.advance(days=1)
        gopay.transfer(ada, "grace@example.com", 1)

    def test_a_wallet_may_not_receive_past_its_balance_limit(self, gopay: InMemoryGoPay, ada: User,
                                                             grace: User) -> None:
        """Refused whole: the sender keeps the money and the day's allowance."""
        gopay.fund(grace, 99_000)
        with pytest.raises(LimitExceeded, match="cannot hold that much"):
            gopay.transfer(ada, "grace@example.com", 1_001)
        assert (gopay.balance(ada), gopay.wallet(ada).spent_today) == (5_000, 0)
        gopay.transfer(ada, "grace@example.com", 1_000)


class TestRepeatedRequests:
    def test_a_repeated_key_answers_the_first_order(self, gopay: InMemoryGoPay, ada: User,
                                                    grace: User) -> None:
        """The money moves once however often the request is sent."""
        first = gopay.transfer(ada, "grace@example.com", 700, idempotency_key="k1", fingerprint="f")
        head = gopay.head()
        again = gopay.transfer(ada, "grace@example.com", 700, idempotency_key="k1", fingerprint="f")
        assert again.id == first.id and gopay.head() == head
        assert gopay.balance(grace) == 700

    def test_the_same_key_with_another_request_is_a_conflict(self, gopay: InMemoryGoPay, ada: User,
                                                             grace: User) -> None:
        gopay.transfer(ada, "grace@example.com", 700, idempotency_key="k1", fingerprint="f")
        with pytest.raises(IdempotencyConflict):
            gopay.transfer(ada, "grace@example.com", 800, idempotency_key="k1", fingerprint="g")

    def test_keys_are_the_caller_s_own(self, gopay: InMemoryGoPay, ada: User, grace: User) -> None:
        """Two callers using the same key make two orders."""
        gopay.fund(grace, 1_000)
        mine = gopay.transfer(ada, "grace@example.com", 100, idempotency_key="k1", fingerprint="f")
        theirs = gopay.transfer(grace, "ada@example.com", 100, idempotency_key="k1", fingerprint="f")
        assert mine.id != theirs.id

    def test_a_keyed_refusal_is_recorded_and_repeated(self, gopay: InMemoryGoPay, ada: User,
                                                      grace: User) -> None:
        """The refused order stays failed: a retry repeats the refusal even once funds arrived."""
        with pytest.raises(InsufficientFunds):
            gopay.transfer(ada, "grace@example.com", 9_000, idempotency_key="k1", fingerprint="f")
        order = gopay.order(order_id_for(ada.id, "transfer", "k1"))
        assert (order.status, order.failure_reason, order.postings) == (
            OrderStatus.FAILED, "insufficient_funds", ())
        gopay.fund(ada, 10_000)
        with pytest.raises(InsufficientFunds):
            gopay.transfer(ada, "grace@example.com", 9_000, idempotency_key="k1", fingerprint="f")
        assert gopay.balance(grace) == 0
        gopay.transfer(ada, "grace@example.com", 9_000, idempotency_key="k2", fingerprint="f")
        assert gopay.balance(grace) == 9_000
        gopay.check_books()

    @pytest.mark.parametrize("refusal", ["frozen", "limit"])
    def test_every_ledger_refusal_is_recorded_the_same_way(self, gopay: InMemoryGoPay, ada: User,
                                                           grace: User, refusal: str) -> None:
        """Frozen wallets and limits leave a failed order with their code, like missing funds."""
        if refusal == "frozen":
            gopay.run(SetFrozen(staff_id=gopay.admin.id, user_id=ada.id, frozen=True, reason="x"))
        amount, error = (100, AccountFrozen) if refusal == "frozen" else (10_001, LimitExceeded)
        gopay.fund(ada, 10_000)
        with pytest.raises(error):
            gopay.transfer(ada, "grace@example.com", amount, idempotency_key="k", fingerprint="f")
        order = gopay.order(order_id_for(ada.id, "transfer", "k"))
        assert (order.status, order.failure_reason) == (OrderStatus.FAILED, error.code)
        with pytest.raises(error):
            gopay.transfer(ada, "grace@example.com", amount, idempotency_key="k", fingerprint="f")


class TestFees:
    def fee_schedule(self, **rule: Any) -> InMemoryGoPay:
        return InMemoryGoPay(settings(fees={TransactionType.TRANSFER: FeeRule(**rule)}))

    def test_the_payer_s_fee_goes_to_the_fees_account_in_the_same_entry(self) -> None:
        """25 fixed plus 1 %: the payer pays 1,035, the payee gets 1,000, GoPay keeps 35."""
        gopay = self.fee_schedule(fixed=25, bps=100)
        ada, grace = gopay.register("ada@example.com"), gopay.register("grace@example.com")
        gopay.fund(ada, 5_000)
        order = gopay.transfer(ada, "grace@example.com", 1_000)
        assert order.postings == (Posting(wallet_id(ada), -1_035, "USD"),
                                  Posting(wallet_id(grace), 1_000, "USD"),
                                  Posting(FEES, 35, "USD"))
        assert (gopay.balance(ada), gopay.balance(grace)) == (3_965, 1_000)
        assert gopay.check_books().accounts[FEES] == 35

    def test_the_fee_is_a_line_of_its_own_on_the_payer_s_wallet(self) -> None:
        """The history shows the transfer and its fee, both under the order's id."""
        gopay = self.fee_schedule(fixed=25, bps=100)
        ada = gopay.register("ada@example.com")
        gopay.register("grace@example.com")
        gopay.fund(ada, 5_000)
        order = gopay.transfer(ada, "grace@example.com", 1_000)
        assert lines(gopay, ada)[-2:] == [("Debited", "transfer", 1_000), ("Debited", "fee", 35)]
        fee_line = gopay.events(wallet_id(ada))[-1]
        assert (fee_line.entry_id, fee_line.counterparty, fee_line.balance_after) == (
            order.id, "fees", 3_965)

    def test_a_payee_paid_fee_comes_out_of_what_is_received(self) -> None:
        """2 % paid by the payee: the payer pays 1,000, the payee keeps 980, GoPay 20."""
        gopay = self.fee_schedule(bps=200, paid_by=FeePayer.PAYEE)
        ada, grace = gopay.register("ada@example.com"), gopay.register("grace@example.com")
        gopay.fund(ada, 5_000)
        order = gopay.transfer(ada, "grace@example.com", 1_000)
        assert order.postings == (Posting(wallet_id(ada), -1_000, "USD"),
                                  Posting(wallet_id(grace), 980, "USD"),
                                  Posting(FEES, 20, "USD"))
        assert (gopay.balance(ada), gopay.balance(grace)) == (4_000, 980)
        assert lines(gopay, grace) == [("Credited", "transfer", 1_000), ("Debited", "fee", 20)]
        gopay.check_books()

    def test_a_fee_the_payer_cannot_afford_refuses_the_transfer(self) -> None:
        """All or nothing: money for the amount but not the fee moves nothing."""
        gopay = self.fee_schedule(fixed=25)
        ada, grace = gopay.register("ada@example.com"), gopay.register("grace@example.com")
        gopay.fund(ada, 1_000)
        with pytest.raises(InsufficientFunds, match="fee"):
            gopay.transfer(ada, "grace@example.com", 1_000)
        assert (gopay.balance(ada), gopay.balance(grace)) == (1_000, 0)
        gopay.transfer(ada, "grace@example.com", 975)
        assert gopay.balance(ada) == 0

    def test_the_fee_does_not_count_against_the_limits(self) -> None:
        """A payment of exactly the tier's limit goes through with its fee on top."""
        gopay = self.fee_schedule(fixed=25)
        ada, grace = gopay.register("ada@example.com"), gopay.register("grace@example.com")
        gopay.fund(ada, 20_000)
        gopay.transfer(ada, "grace@example.com", 10_000)
        assert (gopay.balance(ada), gopay.balance(grace)) == (9_975, 10_000)
        assert gopay.wallet(ada).spent_today == 10_000

    def test_kinds_of_payment_without_a_rule_are_free(self) -> None:
        """A transfer fee does not make adjustments cost anything."""
        gopay = self.fee_schedule(fixed=25)
        ada = gopay.register("ada@example.com")
        order = gopay.fund(ada, 1_000)
        assert len(order.postings) == 2 and gopay.balance(ada) == 1_000


class TestAwaitedTransfers:
    def test_transfers_awaited_together_are_all_or_nothing_each(self, gopay: InMemoryGoPay,
                                                                 ada: User, grace: User) -> None:
        """Ten awaited at once with money for four: four move, six are refused alone."""
        def send() -> Transfer:
            return Transfer(caller_id=ada.id, sender_wallet_id=wallet_id(ada),
                            recipient="grace@example.com", money=Money(1_200, "USD"))

        async def ten_at_once() -> list[object]:
            return await asyncio.gather(*(gopay.commands.run_async(send()) for _ in range(10)),
                                        return_exceptions=True)

        answers = asyncio.run(ten_at_once())
        refused = [a for a in answers if isinstance(a, InsufficientFunds)]
        assert (len(refused), len(answers)) == (6, 10)
        assert (gopay.balance(ada), gopay.balance(grace)) == (200, 4_800)
        gopay.check_books()

    def test_only_commands_that_run_wholly_in_a_batch_can_be_awaited(self,
                                                                     gopay: InMemoryGoPay) -> None:
        """Signing in hashes outside any batch: awaiting it is a programming error."""
        with pytest.raises(TypeError, match="no in-batch handler for SignIn"):
            asyncio.run(gopay.commands.run_async(SignIn(email="ada@example.com", password="x")))


# Steps of a story on three customers: (who, what, to whom of the other two, amount, key).
STEP = st.tuples(st.integers(0, 2), st.sampled_from(["transfer"] * 3 + ["credit", "debit"]),
                 st.integers(1, 2), st.integers(1, 6_000), st.sampled_from([None, "a", "b"]))


class TestTheBooksAlwaysBalance:
    @hypothesis_settings(max_examples=80, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow])
    @given(opening=st.lists(st.integers(1_000, 20_000), min_size=3, max_size=3),
           steps=st.lists(STEP, min_size=8, max_size=30), payer_pays=st.booleans(), bps=st.integers(0, 300))
    def test_any_story_of_transfers_and_adjustments_keeps_the_books(
            self, opening: list[int], steps: list[tuple[int, str, int, int, str | None]],
            payer_pays: bool, bps: int) -> None:
        """Whatever is accepted or refused, every entry balances and every wallet equals its postings.

        And all the money in the wallets and in GoPay's fees account came from the
        adjustments account: the books sum to zero.
        """
        paid_by = FeePayer.PAYER if payer_pays else FeePayer.PAYEE
        gopay = InMemoryGoPay(settings(fees={TransactionType.TRANSFER: FeeRule(bps=bps,
                                                                              paid_by=paid_by)}))
        people = [gopay.register(f"p{n}@example.com") for n in range(3)]
        for person, amount in zip(people, opening, strict=True):
            gopay.fund(person, amount)
        admin = gopay.admin
        for who, what, other, amount, key in steps:
            sender, recipient, money = people[who], people[(who + other) % 3], Money(amount, "USD")
            command: Transfer | Adjust = (
                Transfer(caller_id=sender.id, sender_wallet_id=wallet_id(sender),
                         recipient=recipient.email, money=money, idempotency_key=key,
                         fingerprint=f"{recipient.email}/{amount}")
                if what == "transfer" else
                Adjust(caller_id=admin.id, wallet_id=wallet_id(sender), direction=Direction(what),
                       money=money, reason="correction", idempotency_key=key,
                       fingerprint=f"{who}/{what}/{amount}"))
            with contextlib.suppress(DomainError):  # refusals are part of the story
                gopay.run(command)
        books = gopay.check_books()
        assert sum(books.accounts.values()) == 0
        wallets = sum(gopay.balance(person) for person in people)
        assert wallets + books.accounts.get(FEES, 0) == -books.accounts.get(
            SystemAccount.ADJUSTMENTS.account_id("USD"), 0)
