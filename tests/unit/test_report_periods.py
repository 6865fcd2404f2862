"""The periods reports cover and the amounts they print: months, day ranges, minor digits."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gopay.aggregates.errors import ValidationFailed
from gopay.aggregates.money import CURRENCIES, MAX_AMOUNT, Money
from gopay.notifications import letters
from gopay.reports.sales import checked_range
from gopay.reports.statements import month_of, next_month

TODAY = date(2026, 12, 2)


class TestMonths:
    @pytest.mark.parametrize(("text", "first_day"), [
        ("2026-02", date(2026, 2, 1)), ("2000-01", date(2000, 1, 1)),
        ("2026-12", date(2026, 12, 1)), ("2027-12", date(2027, 12, 1))])
    def test_a_month_is_its_first_day(self, text: str, first_day: date) -> None:
        """Any month from 2000 to a year ahead, the current and next ones included."""
        assert month_of(text, TODAY) == first_day

    @pytest.mark.parametrize("text", ["2026-13", "2026-00", "abc", "2026-1", "0000-01",
                                      "1999-12", "2028-01", "9999-12", "2026-02-01", ""])
    def test_anything_else_is_refused(self, text: str) -> None:
        with pytest.raises(ValidationFailed):
            month_of(text, TODAY)

    def test_after_december_comes_january(self) -> None:
        assert next_month(date(2026, 12, 1)) == date(2027, 1, 1)
        assert next_month(date(2026, 1, 1)) == date(2026, 2, 1)


class TestDayRanges:
    def test_a_year_and_a_day_is_the_longest(self) -> None:
        checked_range(date(2024, 1, 1), date(2024, 12, 31), TODAY)  # a leap year: 366 days
        with pytest.raises(ValidationFailed, match="at most 366"):
            checked_range(date(2024, 1, 1), date(2025, 1, 1), TODAY)

    @pytest.mark.parametrize(("first", "last"), [
        (date(2026, 3, 2), date(2026, 3, 1)), (date(1999, 12, 31), date(2000, 1, 1)),
        (date(9999, 12, 31), date(9999, 12, 31)), (date(1, 1, 1), date(1, 1, 2))])
    def test_backwards_or_out_of_reach_is_refused(self, first: date, last: date) -> None:
        with pytest.raises(ValidationFailed):
            checked_range(first, last, TODAY)


class TestMajorUnits:
    @pytest.mark.parametrize(("amount", "currency", "plain", "grouped"), [
        (1_234_567, "USD", "12345.67", "12,345.67"), (5, "USD", "0.05", "0.05"),
        (1_234_567, "JPY", "1234567", "1,234,567"), (1_234_567, "KWD", "1234.567", "1,234.567"),
        (7, "BHD", "0.007", "0.007"), (-1_050, "EUR", "-10.50", "-10.50"), (0, "UGX", "0", "0")])
    def test_the_currency_s_minor_digits(self, amount: int, currency: str, plain: str,
                                         grouped: str) -> None:
        money = Money(amount, currency)
        assert (money.in_major_units(), money.in_major_units(grouped=True)) == (plain, grouped)

    def test_notices_say_amounts_the_same_way(self) -> None:
        """A KWD notice says 123.456 KWD, not 1,234.56 KWD as two minor digits would."""
        assert (letters.money(123_456, "KWD"), letters.money(123_456, "USD"),
                letters.money(123_456, "JPY")) == ("123.456 KWD", "1,234.56 USD", "123,456 JPY")

    @given(st.integers(-MAX_AMOUNT, MAX_AMOUNT), st.sampled_from(sorted(CURRENCIES)))
    def test_the_text_is_the_exact_amount(self, amount: int, currency: str) -> None:
        """Read back as a decimal, it is the amount in minor units: nothing rounded or lost."""
        text = Money(amount, currency).in_major_units()
        whole, _, minor = text.lstrip("-").partition(".")
        assert len(minor) == CURRENCIES[currency]
        assert (-1 if text.startswith("-") else 1) * int(whole + minor) == amount
