"""The simulator's request bodies; each turns into the port's own values."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from gopay.psp.port import BankAccount, Card, DigitalWallet
from gopay.psp.simulator.provider import MAX_AMOUNT

# GoPay's order ids fit, and so does anything else that sits safely in a URL path.
Nonce = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:-]+$")]
Amount = Annotated[int, Field(gt=0, le=MAX_AMOUNT)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class Strict(BaseModel):
    # Strict: a float or a string amount is refused, as GoPay's own API refuses it.
    model_config = ConfigDict(extra="forbid", strict=True)


class CardIn(Strict):
    type: Literal["card"]
    number: Annotated[str, Field(min_length=12, max_length=19)]

    def port(self) -> Card:
        return Card(self.number)


class BankAccountIn(Strict):
    type: Literal["bank_account"]
    iban: Annotated[str, Field(min_length=15, max_length=42)]

    def port(self) -> BankAccount:
        return BankAccount(self.iban)


class DigitalWalletIn(Strict):
    type: Literal["digital_wallet"]
    provider: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,31}$")]
    account: Annotated[str, Field(min_length=1, max_length=128)]

    def port(self) -> DigitalWallet:
        return DigitalWallet(self.provider, self.account)


class ChargeCreate(Strict):
    nonce: Nonce
    amount: Amount
    currency: Currency
    source: Annotated[CardIn | BankAccountIn | DigitalWalletIn, Field(discriminator="type")]


class PayoutCreate(Strict):
    nonce: Nonce
    amount: Amount
    currency: Currency
    destination: Annotated[BankAccountIn | CardIn, Field(discriminator="type")]


class RefundCreate(Strict):
    nonce: Nonce
    charge: Annotated[str, Field(min_length=1, max_length=64, description="the charge's psp_reference")]
    amount: Amount


class RechargeCreate(Strict):
    """Airtime for a phone number, from the operators' gateway the simulator also plays."""

    nonce: Nonce
    phone_number: Annotated[str, Field(min_length=1, max_length=32, description="E.164")]
    operator: Annotated[str, Field(min_length=1, max_length=200)]
    amount: Amount
    currency: Currency
