"""The wallet aggregate: balances that never go below zero, holds, freezing, and replay."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import date
from functools import partial
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import Application, project_aggregate
from hypothesis import given
from hypothesis import strategies as st

from gopay.aggregates.errors import (
    AccountFrozen,
    CurrencyMismatch,
    DomainError,
    InsufficientFunds,
    InvalidState,
    ValidationFailed,
)
from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.money import Money
from gopay.aggregates.wallet import Wallet
from gopay.api.problems import STATUS_OF_CODE

TODAY = date(2026, 12, 1)
PAYOUT = TransactionType.PAYOUT


def usd(amount: int) -> Money:
    return Money(amount, "USD")


def entry(**fields: Any) -> dict[str, Any]:
    """The bookkeeping every debit and credit carries."""
    return {"entry_id": uuid4(), "entry_type": TransactionType.TRANSFER,
            "counterparty": "someone", "reference": "lunch", **fields}


def debit(wallet: Wallet, money: Money, **fields: Any) -> None:
    wallet.debit(money, **entry(**fields), on=TODAY)


def hold(wallet: Wallet, money: Money, hold_id: UUID | None = None) -> UUID:
    hold_id = hold_id or uuid4()
    wallet.hold(money, hold_id=hold_id, entry_type=PAYOUT, on=TODAY)
    return hold_id


def capture(wallet: Wallet, money: Money, hold_id: UUID) -> None:
    wallet.capture(money, hold_id=hold_id, entry_type=PAYOUT, counterparty="payout_clearing",
                   reference="to the bank")


def wallet_with(balance: int = 0, *, held: int = 0, frozen: bool = False,
                collected: bool = True) -> Wallet:
    """A USD wallet in the given state, its events collected unless told otherwise."""
    wallet = Wallet(owner_id=uuid4(), currency="USD")
    if balance:
        wallet.credit(usd(balance), **entry())
    if held:
        hold(wallet, usd(held))
    if frozen:
        wallet.freeze(by=uuid4(), reason="test")
    if collected:
        wallet.collect_events()
    return wallet


def state(wallet: Wallet) -> tuple[Any, ...]:
    return (wallet.id, wallet.version, wallet.owner_id, wallet.currency, wallet.balance,
            wallet.held, wallet.frozen)


def capture_any(wallet: Wallet, money: Money) -> None:
    """Capture `money` from the wallet's first hold (or from a hold that does not exist)."""
    capture(wallet, money, UUID(next(iter(wallet.holds), str(uuid4()))))


# Each command that moves money, with made-up bookkeeping.
COMMANDS: dict[str, Callable[[Wallet, Money], None]] = {
    "debit": debit,
    "credit": lambda wallet, money: wallet.credit(money, **entry()),
    "hold": hold,
    "capture": capture_any,
}


class TestOpening:
    def test_opens_empty_and_unfrozen(self) -> None:
        """A new wallet holds nothing in its one currency and is recorded as Opened."""
        owner = uuid4()
        wallet = Wallet(owner_id=owner, currency="EUR")
        assert (wallet.owner_id, wallet.currency) == (owner, "EUR")
        assert (wallet.balance, wallet.held, wallet.available, wallet.frozen) == (0, 0, 0, False)
        [opened] = wallet.collect_events()
        assert isinstance(opened, Wallet.Opened)


class TestCredit:
    def test_adds_to_the_balance_and_records_balance_after(self) -> None:
        """A credit raises the balance and its event says what the balance became."""
        wallet = wallet_with(1_000)
        bookkeeping = entry(entry_type="adjustment", counterparty="adjustments",
                            reference="refund")
        wallet.credit(usd(250), **bookkeeping)
        assert wallet.balance == wallet.available == 1_250
        [credited] = wallet.collect_events()
        assert isinstance(credited, Wallet.Credited)
        assert (credited.amount, credited.currency, credited.balance_after) == (250, "USD", 1_250)
        assert (credited.entry_id, credited.entry_type, credited.counterparty,
                credited.reference) == tuple(bookkeeping.values())


class TestDebit:
    def test_takes_from_the_balance_and_records_balance_after(self) -> None:
        """A debit lowers the balance and its event says what the balance became."""
        wallet = wallet_with(1_000)
        debit(wallet, usd(300))
        assert wallet.balance == 700
        [debited] = wallet.collect_events()
        assert isinstance(debited, Wallet.Debited)
        assert (debited.amount, debited.currency, debited.balance_after) == (300, "USD", 700)

    def test_may_take_everything(self) -> None:
        """Debiting the whole balance leaves exactly zero."""
        wallet = wallet_with(1_000)
        debit(wallet, usd(1_000))
        assert wallet.balance == 0

    def test_refuses_to_go_below_zero(self) -> None:
        """One minor unit more than the balance is a 422 insufficient_funds."""
        wallet = wallet_with(1_000)
        with pytest.raises(InsufficientFunds) as refused:
            debit(wallet, usd(1_001))
        assert refused.value.code == "insufficient_funds"
        assert STATUS_OF_CODE[refused.value.code] == 422
        assert wallet.balance == 1_000


class TestHolds:
    def test_a_hold_reserves_money_without_spending_it(self) -> None:
        """Held money stays in the balance but is no longer available."""
        wallet = wallet_with(1_000)
        hold(wallet, usd(400))
        assert (wallet.balance, wallet.held, wallet.available) == (1_000, 400, 600)
        [held] = wallet.collect_events()
        assert isinstance(held, Wallet.Held) and held.amount == 400

    def test_holds_stay_in_the_order_they_were_made(self) -> None:
        """Capturing part of a hold leaves it where it was; capturing all of it removes it
        (the property test below captures from the first hold, as its model does)."""
        wallet = wallet_with(1_000)
        first, second = hold(wallet, usd(5)), hold(wallet, usd(5))
        capture(wallet, usd(2), first)
        assert list(wallet.holds) == [str(first), str(second)]
        capture(wallet, usd(3), first)
        assert list(wallet.holds) == [str(second)]

    def test_held_money_cannot_be_debited(self) -> None:
        """A debit may take only the available money, not what is held."""
        wallet = wallet_with(1_000, held=400)
        with pytest.raises(InsufficientFunds):
            debit(wallet, usd(601))
        debit(wallet, usd(600))
        assert (wallet.balance, wallet.available) == (400, 0)

    def test_cannot_hold_more_than_is_available(self) -> None:
        """A second hold cannot reserve money the first one already reserved."""
        wallet = wallet_with(1_000, held=400)
        with pytest.raises(InsufficientFunds):
            hold(wallet, usd(601))
        assert wallet.held == 400

    def test_release_gives_the_money_back(self) -> None:
        """Releasing a hold makes the money available again."""
        wallet = wallet_with(1_000)
        hold_id = hold(wallet, usd(400))
        wallet.collect_events()
        wallet.release(hold_id=hold_id)
        assert (wallet.balance, wallet.held, wallet.available) == (1_000, 0, 1_000)
        [released] = wallet.collect_events()
        assert isinstance(released, Wallet.Released) and released.amount == 400

    def test_a_hold_is_released_once(self) -> None:
        """Releasing a hold twice, or one never made, would make money available twice."""
        wallet = wallet_with(1_000)
        hold_id = hold(wallet, usd(400))
        wallet.release(hold_id=hold_id)
        for again in (hold_id, uuid4()):
            with pytest.raises(InvalidState):
                wallet.release(hold_id=again)
        assert wallet.held == 0

    def test_capture_pays_out_what_is_held(self) -> None:
        """Captured, held money leaves the balance; in parts, up to what was held, once."""
        wallet = wallet_with(1_000)
        hold_id = hold(wallet, usd(400))
        capture(wallet, usd(300), hold_id)
        assert (wallet.balance, wallet.held, wallet.available) == (700, 100, 600)
        with pytest.raises(InvalidState):
            capture(wallet, usd(101), hold_id)
        capture(wallet, usd(100), hold_id)
        assert (wallet.balance, wallet.held, wallet.holds) == (600, 0, {})
        with pytest.raises(InvalidState):
            capture(wallet, usd(1), hold_id)

    def test_a_released_hold_gives_back_the_days_spending(self) -> None:
        """A payout that failed did not spend anything: the daily limit gets it back."""
        wallet = wallet_with(1_000)
        hold_id = hold(wallet, usd(400))
        assert wallet.spent_on(TODAY) == 400
        wallet.release(hold_id=hold_id)
        assert wallet.spent_on(TODAY) == 0


class TestFreezing:
    def test_a_frozen_wallet_cannot_send(self) -> None:
        """Frozen, a wallet refuses debits with a 423 account_frozen, whatever its balance."""
        wallet = wallet_with(1_000, frozen=True)
        with pytest.raises(AccountFrozen) as refused:
            debit(wallet, usd(1))
        assert refused.value.code == "account_frozen"
        assert STATUS_OF_CODE[refused.value.code] == 423

    def test_a_frozen_wallet_cannot_hold(self) -> None:
        """Frozen, a wallet cannot reserve money for a payout either."""
        wallet = wallet_with(1_000, frozen=True)
        with pytest.raises(AccountFrozen):
            hold(wallet, usd(1))

    def test_a_frozen_wallet_can_still_receive(self) -> None:
        """Freezing stops money leaving, not arriving."""
        wallet = wallet_with(1_000, frozen=True)
        wallet.credit(usd(500), **entry())
        assert wallet.balance == 1_500

    def test_unfreezing_lets_it_send_again(self) -> None:
        """After unfreeze the same debit goes through."""
        wallet = wallet_with(1_000, frozen=True)
        wallet.unfreeze(by=uuid4(), reason="cleared")
        debit(wallet, usd(1_000))
        assert (wallet.frozen, wallet.balance) == (False, 0)

    def test_freezing_twice_records_once(self) -> None:
        """Freeze and unfreeze record an event only when they change something."""
        wallet = wallet_with()
        staff = uuid4()
        wallet.freeze(by=staff, reason="fraud check")
        wallet.freeze(by=staff, reason="again")
        wallet.unfreeze(by=staff, reason="cleared")
        wallet.unfreeze(by=staff, reason="again")
        events = wallet.collect_events()
        assert [type(event) for event in events] == [Wallet.Frozen, Wallet.Unfrozen]
        assert (events[0].by, events[0].reason) == (staff, "fraud check")


class TestCurrency:
    @pytest.mark.parametrize("command", ["debit", "credit", "hold", "capture"])
    def test_refuses_another_currency(self, command: str) -> None:
        """A USD wallet takes no EUR, in any command: a 422 currency_mismatch."""
        wallet = wallet_with(1_000, held=500)
        eur = Money(100, "EUR")
        with pytest.raises(CurrencyMismatch):
            COMMANDS[command](wallet, eur)
        assert (wallet.balance, wallet.held) == (1_000, 500)


# (balance, held, frozen), the command tried and the error it must raise.
REFUSALS = [
    pytest.param((100, 0, False), "debit", usd(101), InsufficientFunds, id="overdraw"),
    pytest.param((100, 60, False), "debit", usd(41), InsufficientFunds, id="debit-held"),
    pytest.param((100, 60, False), "hold", usd(41), InsufficientFunds, id="overhold"),
    pytest.param((100, 60, False), "capture", usd(61), InvalidState, id="overcapture"),
    pytest.param((100, 0, True), "debit", usd(1), AccountFrozen, id="frozen-debit"),
    pytest.param((100, 0, True), "hold", usd(1), AccountFrozen, id="frozen-hold"),
    pytest.param((100, 0, False), "credit", Money(1, "EUR"), CurrencyMismatch, id="credit-eur"),
    pytest.param((100, 0, False), "debit", Money(1, "EUR"), CurrencyMismatch, id="debit-eur"),
]


class TestRefusals:
    @pytest.mark.parametrize(("start", "command", "money", "error"), REFUSALS)
    def test_a_refused_command_records_nothing(self, start: tuple[int, int, bool], command: str,
                                               money: Money, error: type[DomainError]) -> None:
        """A refused command raises its error and leaves state and pending events as they were."""
        balance, held, frozen = start
        wallet = wallet_with(balance, held=held, frozen=frozen, collected=False)
        before, pending = state(wallet), list(wallet.pending_events)
        with pytest.raises(error):
            COMMANDS[command](wallet, money)
        assert state(wallet) == before
        assert wallet.pending_events == pending


class TestAmounts:
    @pytest.mark.parametrize("amount", [0, -100])
    @pytest.mark.parametrize("command", ["debit", "credit", "hold", "capture"])
    def test_refuses_to_move_nothing_or_less(self, command: str, amount: int) -> None:
        """Zero or negative amounts are refused, so nothing can push a balance below zero."""
        wallet = wallet_with(1_000, held=500)
        before = state(wallet)
        with pytest.raises(ValidationFailed):
            COMMANDS[command](wallet, usd(amount))
        assert state(wallet) == before and wallet.pending_events == []


class TestReplay:
    def test_stored_events_rebuild_the_same_wallet(self) -> None:
        """Saved and read back through the event store, a wallet has the same state."""
        wallet = Wallet(owner_id=uuid4(), currency="KES")
        kes = partial(Money, currency="KES")
        wallet.credit(kes(10_000), **entry())
        first, second = hold(wallet, kes(2_500)), hold(wallet, kes(500))
        debit(wallet, kes(1_000))
        capture(wallet, kes(1_000), first)
        wallet.freeze(by=uuid4(), reason="review")
        wallet.release(hold_id=second)
        wallet.credit(kes(7), **entry())
        app: Application[UUID] = Application()  # in-memory (POPO) event store
        app.save(wallet)
        assert state(app.repository.get(wallet.id)) == state(wallet)
        assert (wallet.balance, wallet.held, wallet.frozen) == (8_007, 1_500, True)

    def test_the_event_chain_rebuilds_the_same_wallet(self) -> None:
        """Applying a wallet's events in order, from nothing, gives the same wallet."""
        wallet = Wallet(owner_id=uuid4(), currency="USD")
        wallet.credit(usd(900), **entry())
        debit(wallet, usd(100))
        hold(wallet, usd(300))
        wallet.freeze(by=uuid4(), reason="review")
        events = wallet.collect_events()
        assert state(project_aggregate(None, events)) == state(wallet)  # type: ignore[arg-type]


operations = st.lists(
    st.tuples(st.sampled_from(["debit", "credit", "hold", "capture", "release", "freeze",
                               "unfreeze"]),
              st.integers(1, 10_000)),
    max_size=40)


class TestWalletProperties:
    @given(operations=operations)
    def test_any_sequence_keeps_the_books(self, operations: list[tuple[str, int]]) -> None:
        """Each command succeeds exactly when the rules allow; balance is credited minus debits."""
        wallet = Wallet(owner_id=uuid4(), currency="USD")
        credited = debits = 0
        holds: dict[UUID, int] = {}  # what each hold still holds, oldest first
        frozen = False
        for command, amount in operations:
            held = sum(holds.values())
            available = credited - debits - held
            first = next(iter(holds), None)
            allowed = {"debit": not frozen and amount <= available,
                       "credit": True,
                       "hold": not frozen and amount <= available,
                       "capture": first is not None and amount <= holds[first],
                       "release": first is not None,
                       "freeze": True, "unfreeze": True}[command]
            try:
                if command == "freeze":
                    wallet.freeze(by=uuid4(), reason="test")
                elif command == "unfreeze":
                    wallet.unfreeze(by=uuid4(), reason="test")
                elif command == "release":
                    wallet.release(hold_id=first or uuid4())
                elif command == "hold":
                    hold_id = hold(wallet, usd(amount))
                else:
                    COMMANDS[command](wallet, usd(amount))
            except (InsufficientFunds, AccountFrozen, InvalidState):
                assert not allowed, f"{command} {amount} was refused"
            else:
                assert allowed, f"{command} {amount} went through"
                credited += amount if command == "credit" else 0
                debits += amount if command in ("debit", "capture") else 0
                if command == "hold":
                    holds[hold_id] = amount
                elif command == "capture" and first is not None:
                    holds[first] -= amount
                if first is not None and (command == "release" or holds[first] == 0):
                    del holds[first]
                frozen = {"freeze": True, "unfreeze": False}.get(command, frozen)
            held = sum(holds.values())
            assert wallet.balance == credited - debits >= 0
            assert wallet.held == held >= 0
            assert wallet.available == wallet.balance - wallet.held >= 0
            assert wallet.frozen is frozen
        assert state(project_aggregate(None, wallet.collect_events())) == state(wallet)  # type: ignore[arg-type]

    @given(operations=operations)
    def test_balance_after_is_the_running_balance(self, operations: list[tuple[str, int]]) -> None:
        """Each recorded debit or credit's balance_after equals the previous one plus its amount."""
        wallet = Wallet(owner_id=uuid4(), currency="USD")
        for command, amount in operations:
            if command in ("debit", "credit"):
                with contextlib.suppress(InsufficientFunds):
                    COMMANDS[command](wallet, usd(amount))
        running = 0
        for event in wallet.collect_events():
            if isinstance(event, Wallet.Credited | Wallet.Debited):
                running += event.amount if isinstance(event, Wallet.Credited) else -event.amount
                assert event.balance_after == running
        assert running == wallet.balance
