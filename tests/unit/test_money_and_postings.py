"""Money as integer minor units, and the posting rules every journal entry must follow."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import FrozenInstanceError
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gopay.aggregates.errors import CurrencyMismatch, Unbalanced, ValidationFailed
from gopay.aggregates.ledger import Posting, SystemAccount, journal_entry, system_account_names
from gopay.aggregates.money import CURRENCIES, MAX_AMOUNT, Money
from gopay.api.problems import STATUS_OF_CODE

currencies = st.sampled_from(sorted(CURRENCIES))
amounts = st.integers(-MAX_AMOUNT, MAX_AMOUNT)
movements = st.integers(1, MAX_AMOUNT)
account_ids = st.uuids()


@st.composite
def balanced_postings(draw: st.DrawFn) -> list[Posting]:
    """Postings made of pairs that each move one amount from one account to another."""
    pairs = draw(st.lists(st.tuples(account_ids, account_ids, movements, currencies),
                          min_size=1, max_size=6))
    postings = [leg for source, target, amount, currency in pairs
                for leg in (Posting(source, -amount, currency), Posting(target, amount, currency))]
    return draw(st.permutations(postings))


def totals(postings: list[Posting]) -> dict[str, int]:
    summed: dict[str, int] = defaultdict(int)
    for posting in postings:
        summed[posting.currency] += posting.amount
    return dict(summed)


class TestMoney:
    def test_is_an_integer_of_minor_units_in_a_currency(self) -> None:
        """10.50 USD is 1050 minor units of USD."""
        money = Money(1050, "USD")
        assert (money.amount, money.currency) == (1050, "USD")
        assert money == Money(1050, "USD") and money != Money(1050, "EUR")

    @pytest.mark.parametrize("amount", [10.5, 10.0, Decimal(10), "10", None])
    def test_refuses_anything_but_an_int(self, amount: object) -> None:
        """Floats, decimals and strings are refused, even when they hold a whole number."""
        with pytest.raises(ValidationFailed, match="integer"):
            Money(amount, "USD")  # type: ignore[arg-type]

    @pytest.mark.parametrize("amount", [True, False])
    def test_refuses_bools(self, amount: bool) -> None:
        """A bool is an int to Python, but never an amount of money."""
        with pytest.raises(ValidationFailed):
            Money(amount, "USD")

    @pytest.mark.parametrize("currency", ["usd", "XXX", "BTC", "", "USDT"])
    def test_refuses_unknown_currencies(self, currency: str) -> None:
        """Only the currencies GoPay holds wallets in, spelled as ISO 4217 codes."""
        with pytest.raises(ValidationFailed, match="currency"):
            Money(100, currency)

    @pytest.mark.parametrize("amount", [MAX_AMOUNT, -MAX_AMOUNT])
    def test_accepts_up_to_max_amount(self, amount: int) -> None:
        """MAX_AMOUNT itself, either way, is still money."""
        assert Money(amount, "USD").amount == amount

    @pytest.mark.parametrize("amount", [MAX_AMOUNT + 1, -MAX_AMOUNT - 1, 2**63])
    def test_refuses_beyond_max_amount(self, amount: int) -> None:
        """One minor unit past MAX_AMOUNT is refused."""
        with pytest.raises(ValidationFailed, match="too large"):
            Money(amount, "USD")

    def test_is_immutable(self) -> None:
        """A Money value cannot be changed after it was checked."""
        money = Money(100, "USD")
        with pytest.raises(FrozenInstanceError):
            money.amount = 10**30  # type: ignore[misc]

    def test_refusals_carry_the_validation_error_code(self) -> None:
        """Bad money is a 422 validation_error to the API."""
        with pytest.raises(ValidationFailed) as refused:
            Money(1.5, "USD")  # type: ignore[arg-type]
        assert (refused.value.code, STATUS_OF_CODE[refused.value.code]) == ("validation_error", 422)

    @given(amount=amounts, currency=currencies)
    def test_any_amount_within_the_limit_is_money(self, amount: int, currency: str) -> None:
        """Every integer from -MAX_AMOUNT to MAX_AMOUNT in every known currency is accepted."""
        assert Money(amount, currency) == Money(amount, currency)

    @given(excess=st.integers(1, 10**20), negative=st.booleans())
    def test_any_amount_beyond_the_limit_is_refused(self, excess: int, negative: bool) -> None:
        """Every integer beyond MAX_AMOUNT, either way, is refused."""
        amount = MAX_AMOUNT + excess
        with pytest.raises(ValidationFailed):
            Money(-amount if negative else amount, "USD")


class TestPositiveMoney:
    @pytest.mark.parametrize("amount", [1, 1050, MAX_AMOUNT])
    def test_accepts_more_than_zero(self, amount: int) -> None:
        """Money that moves is at least one minor unit and at most MAX_AMOUNT."""
        assert Money.positive(amount, "EUR") == Money(amount, "EUR")

    @pytest.mark.parametrize("amount", [0, -1, -MAX_AMOUNT])
    def test_refuses_zero_and_less(self, amount: int) -> None:
        """Zero or negative money cannot be moved."""
        with pytest.raises(ValidationFailed, match="greater than zero"):
            Money.positive(amount, "EUR")

    @pytest.mark.parametrize(("amount", "currency"), [(1.0, "EUR"), (True, "EUR"), (5, "XXX"),
                                                      (MAX_AMOUNT + 1, "EUR")])
    def test_keeps_every_rule_of_money(self, amount: int, currency: str) -> None:
        """positive() refuses whatever Money() refuses."""
        with pytest.raises(ValidationFailed):
            Money.positive(amount, currency)


class TestArithmetic:
    def test_adds_in_one_currency(self) -> None:
        """Adding money of one currency adds the minor units."""
        assert Money(1050, "USD") + Money(-50, "USD") == Money(1000, "USD")

    def test_refuses_to_add_currencies(self) -> None:
        """USD and EUR cannot be added: a 422 currency_mismatch."""
        with pytest.raises(CurrencyMismatch) as refused:
            Money(100, "USD") + Money(100, "EUR")
        assert refused.value.code == "currency_mismatch"

    def test_negates(self) -> None:
        """-Money is the same amount the other way, in the same currency."""
        assert -Money(1050, "JPY") == Money(-1050, "JPY")

    def test_a_sum_beyond_the_limit_is_refused(self) -> None:
        """Adding cannot produce money past MAX_AMOUNT."""
        with pytest.raises(ValidationFailed):
            Money(MAX_AMOUNT, "USD") + Money(1, "USD")

    @given(a=amounts, b=amounts, currency=currencies)
    def test_adding_is_integer_addition(self, a: int, b: int, currency: str) -> None:
        """Within the limit, a sum of money is the sum of its minor units, in either order."""
        assume(abs(a + b) <= MAX_AMOUNT)
        assert Money(a, currency) + Money(b, currency) == Money(a + b, currency)
        assert Money(a, currency) + Money(b, currency) == Money(b, currency) + Money(a, currency)


class TestJournalEntry:
    def test_accepts_two_balancing_postings(self) -> None:
        """A debit of one account and an equal credit of another is an entry, returned as given."""
        payer, payee = Posting(uuid4(), -1050, "USD"), Posting(uuid4(), 1050, "USD")
        assert journal_entry(payer, payee) == (payer, payee)

    @pytest.mark.parametrize("count", [0, 1])
    def test_needs_at_least_two_postings(self, count: int) -> None:
        """No entry has fewer than two legs, not even one of zero."""
        with pytest.raises(Unbalanced, match="at least two"):
            journal_entry(*[Posting(uuid4(), 0, "USD")] * count)

    def test_refuses_a_zero_posting(self) -> None:
        """Every leg moves money, even when the others balance."""
        with pytest.raises(Unbalanced, match="non-zero"):
            journal_entry(Posting(uuid4(), 100, "USD"), Posting(uuid4(), -100, "USD"),
                          Posting(uuid4(), 0, "USD"))

    @pytest.mark.parametrize("amount", [100.0, Decimal(100), True])
    def test_refuses_amounts_that_are_not_ints(self, amount: object) -> None:
        """A float, decimal or bool leg is refused although it balances numerically."""
        with pytest.raises(Unbalanced, match="integer"):
            journal_entry(Posting(uuid4(), amount, "USD"),  # type: ignore[arg-type]
                          Posting(uuid4(), -int(amount), "USD"))  # type: ignore[call-overload]

    def test_refuses_postings_that_do_not_sum_to_zero(self) -> None:
        """Money cannot appear or vanish: 1050 out and 1000 in is refused."""
        with pytest.raises(Unbalanced, match="do not balance"):
            journal_entry(Posting(uuid4(), -1050, "USD"), Posting(uuid4(), 1000, "USD"))

    def test_balances_each_currency_separately(self) -> None:
        """An entry in two currencies balances when each currency sums to zero."""
        postings = (Posting(uuid4(), -100, "USD"), Posting(uuid4(), 100, "USD"),
                    Posting(uuid4(), -90, "EUR"), Posting(uuid4(), 60, "EUR"),
                    Posting(uuid4(), 30, "EUR"))
        assert journal_entry(*postings) == postings

    def test_currencies_cannot_offset_each_other(self) -> None:
        """100 USD out and 100 EUR in sums to zero numbers but is not balanced."""
        with pytest.raises(Unbalanced):
            journal_entry(Posting(uuid4(), -100, "USD"), Posting(uuid4(), 100, "EUR"))

    def test_an_unbalanced_entry_is_an_unbalanced_entry_error(self) -> None:
        """An unbalanced entry is reported with the unbalanced_entry code."""
        with pytest.raises(Unbalanced) as refused:
            journal_entry(Posting(uuid4(), 1, "USD"), Posting(uuid4(), 1, "USD"))
        assert (refused.value.code, STATUS_OF_CODE[refused.value.code]) == ("unbalanced_entry", 422)

    @given(postings=balanced_postings())
    def test_any_entry_of_balanced_pairs_is_accepted(self, postings: list[Posting]) -> None:
        """However many pairs in whatever currencies and order, balanced pairs form an entry."""
        assert journal_entry(*postings) == tuple(postings)

    @given(postings=balanced_postings(), data=st.data())
    def test_any_change_to_one_leg_is_refused(self, postings: list[Posting],
                                              data: st.DataObject) -> None:
        """Changing one leg's amount by anything unbalances its currency, so it is refused."""
        index = data.draw(st.integers(0, len(postings) - 1), label="leg")
        leg = postings[index]
        delta = data.draw(st.integers(-MAX_AMOUNT, MAX_AMOUNT).filter(
            lambda delta: delta != 0 and leg.amount + delta != 0), label="delta")
        postings[index] = Posting(leg.account_id, leg.amount + delta, leg.currency)
        assert totals(postings)[leg.currency] == delta
        with pytest.raises(Unbalanced):
            journal_entry(*postings)

    @given(postings=balanced_postings(), data=st.data())
    def test_moving_a_leg_to_another_currency_is_refused(self, postings: list[Posting],
                                                         data: st.DataObject) -> None:
        """A leg booked in the wrong currency unbalances two currencies at once."""
        index = data.draw(st.integers(0, len(postings) - 1), label="leg")
        leg = postings[index]
        other = data.draw(currencies.filter(lambda currency: currency != leg.currency))
        postings[index] = Posting(leg.account_id, leg.amount, other)
        with pytest.raises(Unbalanced):
            journal_entry(*postings)

    @given(postings=balanced_postings())
    def test_dropping_a_leg_is_refused(self, postings: list[Posting]) -> None:
        """An entry that lost one of its legs no longer balances."""
        with pytest.raises(Unbalanced):
            journal_entry(*postings[1:])


class TestPostingRecords:
    @given(account=account_ids, amount=amounts.filter(bool), currency=currencies)
    def test_round_trips_through_its_record(self, account: UUID, amount: int,
                                            currency: str) -> None:
        """A posting stored in an event comes back as the same posting."""
        posting = Posting(account, amount, currency)
        assert Posting.from_record(posting.as_record()) == posting


class TestSystemAccounts:
    def test_have_one_stable_account_per_currency(self) -> None:
        """Each system account has a fixed id per currency, different from every other one."""
        assert SystemAccount.FEES.account_id("USD") == SystemAccount.FEES.account_id("USD")
        ids = {account.account_id(currency) for account in SystemAccount for currency in CURRENCIES}
        assert len(ids) == len(SystemAccount) * len(CURRENCIES)

    def test_names_cover_every_account_in_every_currency(self) -> None:
        """The read side can name any system account id back."""
        names = system_account_names()
        assert len(names) == len(SystemAccount) * len(CURRENCIES)
        assert names[SystemAccount.ADJUSTMENTS.account_id("KES")] == "adjustments"
