"""What a card, IBAN, wallet account or crypto address must be to be saved, and how it is masked."""

from __future__ import annotations

import contextlib
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gopay.aggregates import instruments
from gopay.aggregates.errors import ValidationFailed

TODAY = date(2026, 5, 17)


def luhn_check_digit(payload: str) -> str:
    """The Luhn check digit, written out here so the tests do not trust the code they test."""
    total = 0
    for position, digit in enumerate(reversed(payload)):
        value = int(digit) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str(-total % 10)


def iban_check_digits(country: str, bban: str) -> str:
    """ISO 7064 MOD 97-10 check digits of an IBAN, written out here for the same reason."""
    number = int("".join(str(int(char, 36)) for char in bban + country + "00"))
    return f"{98 - number % 97:02d}"


card_numbers = st.text("0123456789", min_size=12, max_size=18).map(
    lambda payload: payload + luhn_check_digit(payload))
german_ibans = st.text("0123456789", min_size=18, max_size=18).map(
    lambda bban: "DE" + iban_check_digits("DE", bban) + bban)
british_ibans = st.tuples(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=4, max_size=4),
                          st.text("0123456789", min_size=14, max_size=14)).map(
    lambda parts: "GB" + iban_check_digits("GB", "".join(parts)) + "".join(parts))


def card(number: str = "4242424242424242", exp_month: int = 12, exp_year: int = 2030,
         cvc: str = "123", holder_name: str = "Ada Lovelace") -> instruments.Instrument:
    return instruments.card(number, exp_month, exp_year, cvc, holder_name, today=TODAY)


def refused(check, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationFailed) as refusal:
        check(*args, **kwargs)
    return str(refusal.value)


class TestCards:
    @given(card_numbers)
    def test_every_luhn_valid_number_is_accepted(self, number: str) -> None:
        """A 13-19 digit number with a right check digit passes, shown only by its last four."""
        accepted = card(number)
        assert accepted.secret == number
        assert accepted.details["last4"] == number[-4:]
        assert number not in repr(accepted)

    @given(card_numbers, st.data())
    def test_any_single_digit_change_is_refused(self, number: str, data: st.DataObject) -> None:
        """Luhn catches every mistyped digit."""
        position = data.draw(st.integers(0, len(number) - 1))
        digit = data.draw(st.sampled_from("0123456789").filter(lambda d: d != number[position]))
        mistyped = number[:position] + digit + number[position + 1:]
        assert "Luhn" in refused(card, mistyped)

    def test_spaces_and_dashes_are_allowed_in_the_number(self) -> None:
        assert card("4242 4242-4242 4242").secret == "4242424242424242"

    # Full-width and Arabic-Indic digits, which str.isdigit() would accept.
    @pytest.mark.parametrize("number", ["4242", "42424242424", "4" * 20, "4242424242424242x",
                                        "\uff14\uff12" * 8, "\u0664\u0662" * 8, ""])
    def test_wrong_lengths_and_non_ascii_digits_are_refused(self, number: str) -> None:
        assert "13 to 19 digits" in refused(card, number)

    @pytest.mark.parametrize(("number", "brand"), [
        ("4242424242424242", "visa"), ("5555555555554444", "mastercard"),
        ("2223003122003222", "mastercard"), ("378282246310005", "amex"),
        ("6011111111111117", "discover"), ("3530111333300000", "jcb"),
        ("36227206271667", "diners"), ("6200000000000005", "unionpay"),
        ("9999999999999995", "unknown")])
    def test_brand_from_the_leading_digits(self, number: str, brand: str) -> None:
        assert card(number).details["brand"] == brand

    def test_expiry_month_must_be_1_to_12(self) -> None:
        for month in (0, 13, -1):
            assert "exp_month" in refused(card, exp_month=month)

    def test_a_card_is_good_through_its_expiry_month(self) -> None:
        """May 2026 is still good on 17 May 2026; April 2026 is not."""
        assert card(exp_month=5, exp_year=2026).details["exp_year"] == 2026
        assert "expired" in refused(card, exp_month=4, exp_year=2026)
        assert "expired" in refused(card, exp_month=12, exp_year=2025)

    def test_two_digit_years_are_this_century(self) -> None:
        assert card(exp_year=31).details["exp_year"] == 2031
        assert "expired" in refused(card, exp_year=25)

    def test_years_absurdly_far_ahead_are_refused(self) -> None:
        assert "too far" in refused(card, exp_year=2200)

    @pytest.mark.parametrize("cvc", ["", "12", "12345", "12a", " 123", "\uff11\uff12\uff13"])
    def test_cvc_must_be_3_or_4_digits(self, cvc: str) -> None:
        assert "cvc" in refused(card, cvc=cvc)

    def test_the_cvc_is_not_kept(self) -> None:
        """Nothing the check returns holds the CVC."""
        accepted = card(cvc="9731")
        assert "9731" not in repr(accepted) + accepted.canonical + accepted.identity

    def test_holder_name_is_required(self) -> None:
        assert "holder_name" in refused(card, holder_name="  ")


class TestBankAccounts:
    @given(st.one_of(german_ibans, british_ibans))
    def test_every_iban_with_right_check_digits_is_accepted(self, number: str) -> None:
        accepted = instruments.bank_account(number, "Ada Lovelace")
        assert accepted.details == {"last4": number[-4:], "country": number[:2]}

    @given(st.one_of(german_ibans, british_ibans), st.data())
    def test_any_single_digit_change_is_refused(self, number: str, data: st.DataObject) -> None:
        """Mod-97 catches every mistyped digit, the check digits included."""
        positions = [i for i, char in enumerate(number) if char.isdigit()]
        position = data.draw(st.sampled_from(positions))
        digit = data.draw(st.sampled_from("0123456789").filter(lambda d: d != number[position]))
        mistyped = number[:position] + digit + number[position + 1:]
        assert "mod-97" in refused(instruments.bank_account, mistyped, "Ada")

    def test_spaces_and_lower_case_are_allowed(self) -> None:
        accepted = instruments.bank_account("gb82 west 1234 5698 7654 32", "Ada")
        assert accepted.secret == "GB82WEST12345698765432"

    @pytest.mark.parametrize("number", [
        "DE8937040044053201300",  # one digit short for Germany
        "DE893704004405320130000",  # one too many
        "XX82WEST12345698765432",  # no such IBAN country
        "GB82WEST1234569876543A",  # letters where Britain has digits
    ])
    def test_length_and_format_follow_the_country(self, number: str) -> None:
        corrected = number[:2] + iban_check_digits(number[:2], number[4:]) + number[4:]
        assert "length and format" in refused(instruments.bank_account, corrected, "Ada")

    @pytest.mark.parametrize("number", ["", "GB", "not an iban", "GB82 WEST 1234 5698 7654 32 ☃"])
    def test_anything_else_is_not_an_iban(self, number: str) -> None:
        refused(instruments.bank_account, number, "Ada")


class TestDigitalWallets:
    @pytest.mark.parametrize(("account", "masked"), [
        ("Ada.Lovelace@Example.com", "A***@example.com"),
        ("+254712345678", "+2*******5678"),
        ("@Ada_L", "@a***l"),
        ("$adalove", "$a***e"),
    ])
    def test_accounts_are_masked(self, account: str, masked: str) -> None:
        accepted = instruments.digital_wallet("paypal", account)
        assert accepted.details == {"provider": "paypal", "account": masked}

    def test_only_known_providers(self) -> None:
        assert "provider" in refused(instruments.digital_wallet, "myspace", "ada@example.com")

    @pytest.mark.parametrize("account", ["", "a", "ada@", "ada@@example.com", "+1 202 555",
                                         "two words", "x" * 400])
    def test_an_account_must_be_an_email_phone_or_handle(self, account: str) -> None:
        assert "account" in refused(instruments.digital_wallet, "paypal", account)


class TestCrypto:
    @pytest.mark.parametrize("address", [
        "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",  # P2PKH
        "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",  # P2SH
        "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",  # bech32
        "BC1QAR0SRRR7XFKVY5L643LYDNW9RE59GTZZWF5MDQ",  # bech32 in capitals
    ])
    def test_bitcoin_addresses_with_valid_checksums(self, address: str) -> None:
        accepted = instruments.crypto("btc", address)
        assert accepted.details["address"] == f"{accepted.secret[:6]}...{accepted.secret[-4:]}"

    @pytest.mark.parametrize("address", [
        "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3",  # checksum off by one character
        "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdr",
        "0x52908400098527886E0F7030069857D2E4169EE7", "", "1" * 100])
    def test_bitcoin_refuses_the_rest(self, address: str) -> None:
        assert "bitcoin" in refused(instruments.crypto, "btc", address)

    @pytest.mark.parametrize("network", ["eth", "usdc"])
    def test_ethereum_style_addresses(self, network: str) -> None:
        accepted = instruments.crypto(network, "0x52908400098527886E0F7030069857D2E4169EE7")
        assert accepted.details == {"network": network, "address": "0x5290...9ee7"}
        for bad in ("52908400098527886E0F7030069857D2E4169EE7", "0x5290840009852788",
                    "0xZZ908400098527886E0F7030069857D2E4169EE7"):
            assert "0x and 40 hex" in refused(instruments.crypto, network, bad)

    def test_only_known_networks(self) -> None:
        assert "network" in refused(instruments.crypto, "dogecoin", "D" * 34)


class TestNoInputCrashes:
    @given(st.text(max_size=60), st.integers(-5, 10_000), st.integers(-5, 10_000),
           st.text(max_size=6), st.text(max_size=30))
    def test_cards(self, number: str, month: int, year: int, cvc: str, name: str) -> None:
        """Any input is accepted or refused with a ValidationFailed, nothing else."""
        with contextlib.suppress(ValidationFailed):
            instruments.card(number, month, year, cvc, name, today=TODAY)

    @given(st.text(max_size=60), st.text(max_size=30))
    def test_ibans(self, number: str, name: str) -> None:
        with contextlib.suppress(ValidationFailed):
            instruments.bank_account(number, name)

    @given(st.sampled_from([*instruments.CRYPTO_NETWORKS, "x"]), st.text(max_size=120))
    def test_crypto(self, network: str, address: str) -> None:
        with contextlib.suppress(ValidationFailed):
            instruments.crypto(network, address)

    @given(st.sampled_from([*instruments.WALLET_PROVIDERS, "x"]), st.text(max_size=80))
    def test_wallets(self, provider: str, account: str) -> None:
        with contextlib.suppress(ValidationFailed):
            instruments.digital_wallet(provider, account)
