"""Request and response bodies of /v1/payment-methods: a card number goes in, only its last four come out.

The request bodies check shapes and sizes; what makes a number valid (Luhn, expiry, IBAN
mod-97, address checksums) is decided in gopay/aggregates/instruments.py. Numbers and CVCs
are `SecretStr`, so a body that is printed or logged by mistake shows asterisks.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictInt

from gopay.aggregates import instruments
from gopay.aggregates.instruments import Instrument
from gopay.api.schemas import Name, Page, UtcDatetime

WalletProvider = Literal["alipay", "apple_pay", "cash_app", "google_pay", "mpesa", "paypal",
                         "venmo", "wechat_pay"]
CryptoNetwork = Literal["btc", "eth", "usdc"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CardCreate(_Strict):
    number: Annotated[SecretStr, Field(min_length=1, max_length=40,
                                       description="13-19 digits; spaces and dashes allowed")]
    exp_month: Annotated[StrictInt, Field(ge=1, le=12)]
    exp_year: Annotated[StrictInt, Field(ge=0, le=9999, description="Four digits (or two)")]
    cvc: Annotated[SecretStr, Field(min_length=3, max_length=4,
                                    description="Checked, then forgotten: never stored")]
    holder_name: Name


class BankAccountCreate(_Strict):
    iban: Annotated[str, Field(min_length=1, max_length=64)]
    holder_name: Name


class DigitalWalletCreate(_Strict):
    provider: WalletProvider
    account: Annotated[str, Field(min_length=1, max_length=320,
                                  description="E-mail address, E.164 phone number or handle")]


class CryptoCreate(_Strict):
    network: CryptoNetwork
    address: Annotated[str, Field(min_length=1, max_length=128)]


class CardMethodCreate(_Strict):
    type: Literal["card"]
    card: CardCreate

    def instrument(self, today: date) -> Instrument:
        c = self.card
        return instruments.card(c.number.get_secret_value(), c.exp_month, c.exp_year,
                                c.cvc.get_secret_value(), c.holder_name, today=today)


class BankAccountMethodCreate(_Strict):
    type: Literal["bank_account"]
    bank_account: BankAccountCreate

    def instrument(self, today: date) -> Instrument:
        return instruments.bank_account(self.bank_account.iban, self.bank_account.holder_name)


class DigitalWalletMethodCreate(_Strict):
    type: Literal["digital_wallet"]
    digital_wallet: DigitalWalletCreate

    def instrument(self, today: date) -> Instrument:
        return instruments.digital_wallet(self.digital_wallet.provider, self.digital_wallet.account)


class CryptoMethodCreate(_Strict):
    type: Literal["crypto"]
    crypto: CryptoCreate

    def instrument(self, today: date) -> Instrument:
        return instruments.crypto(self.crypto.network, self.crypto.address)


PaymentMethodCreate = Annotated[
    CardMethodCreate | BankAccountMethodCreate | DigitalWalletMethodCreate | CryptoMethodCreate,
    Field(discriminator="type")]


class CardPublic(BaseModel):
    brand: str
    last4: str
    exp_month: int
    exp_year: int


class BankAccountPublic(BaseModel):
    last4: str
    country: str
    holder_name: str


class DigitalWalletPublic(BaseModel):
    provider: str
    account: str = Field(description="Masked")


class CryptoPublic(BaseModel):
    network: str
    address: str = Field(description="Masked: the first six and last four characters")


class _MethodPublic(BaseModel):
    id: UUID
    created_at: UtcDatetime


class CardMethodPublic(_MethodPublic):
    type: Literal["card"] = "card"
    card: CardPublic


class BankAccountMethodPublic(_MethodPublic):
    type: Literal["bank_account"] = "bank_account"
    bank_account: BankAccountPublic


class DigitalWalletMethodPublic(_MethodPublic):
    type: Literal["digital_wallet"] = "digital_wallet"
    digital_wallet: DigitalWalletPublic


class CryptoMethodPublic(_MethodPublic):
    type: Literal["crypto"] = "crypto"
    crypto: CryptoPublic


PaymentMethodPublic = Annotated[
    CardMethodPublic | BankAccountMethodPublic | DigitalWalletMethodPublic | CryptoMethodPublic,
    Field(discriminator="type")]


class PaymentMethodDeleted(BaseModel):
    id: UUID
    deleted: Literal[True] = True



class PaymentMethodPage(Page[PaymentMethodPublic]):
    """A page of the caller's payment methods, newest first."""
