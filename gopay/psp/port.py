"""The PSP port: what GoPay asks of a payment service provider, and what it answers.

Every operation carries GoPay's nonce, its idempotency key at the PSP: the same nonce twice
never charges or pays twice, it answers the first operation's result. So a caller that got
no answer (`PspNoAnswer`) retries with the same nonce, or asks `status(nonce)`, and never
with a new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Protocol, runtime_checkable


class OperationKind(StrEnum):
    CHARGE = "charge"
    PAYOUT = "payout"
    REFUND = "refund"
    # Airtime bought from a mobile operator (`gopay.operators.port`), under a nonce as well.
    RECHARGE = "recharge"


class OperationStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # Accepted but not finished (a bank debit that clears later): the webhook or a later
    # `status` says how it ended.
    PENDING = "pending"


@dataclass(frozen=True)
class Card:
    """A card by its full number (the PSP needs it; the number never shows in a repr)."""

    number: str = field(repr=False)


@dataclass(frozen=True)
class BankAccount:
    iban: str = field(repr=False)


@dataclass(frozen=True)
class DigitalWallet:
    provider: str
    account: str = field(repr=False)


Source = Card | BankAccount | DigitalWallet
Destination = BankAccount | Card


@dataclass(frozen=True)
class PspResult:
    """What the PSP did for one of GoPay's nonces."""

    nonce: str
    kind: OperationKind
    status: OperationStatus
    psp_reference: str
    amount: int
    currency: str
    # What the PSP keeps for the operation, in minor units of `currency` (0 when it failed).
    fee: int
    failure_reason: str | None = None
    # For a refund: the charge it gives back.
    charge_reference: str | None = None
    # For a charge: the payer's bank took the money back (a chargeback).
    disputed: bool = False


class PspError(Exception):
    """The PSP did not give GoPay an operation's result."""


class PspNoAnswer(PspError):
    """No answer (timeout, dropped connection, 5xx): the PSP may or may not have done the work.

    Ask `status(nonce)` later, or repeat the call with the same nonce; never give up on the
    nonce and never use a new one for the same order.
    """


class PspBusy(PspError):
    """The PSP turned the request away for now (429, too many requests): it did nothing.

    Try again later with the same nonce, not before `retry_after` seconds when it said how
    long; the operation is neither failed nor done.
    """

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class PspRefused(PspError):
    """A definite refusal (4xx): the PSP did nothing for this request, and would refuse it again."""

    def __init__(self, code: str, detail: str, http_status: int) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.http_status = http_status


class NonceReused(PspRefused):
    """The nonce already names another operation (other amount, instrument or kind).

    Unlike other refusals this does not mean nothing happened under the nonce: the first
    operation stands, and `status(nonce)` tells what it was.
    """


class Psp(Protocol):
    """A payment service provider, as GoPay's flows use it."""

    def charge(self, nonce: str, amount: int, currency: str, source: Source) -> PspResult:
        """Take `amount` from a card, bank account or digital wallet."""
        ...

    def payout(self, nonce: str, amount: int, currency: str, destination: Destination) -> PspResult:
        """Send `amount` to a bank account or card."""
        ...

    def refund(self, nonce: str, charge_reference: str, amount: int) -> PspResult:
        """Give back up to what a charge took, in the charge's currency."""
        ...

    def status(self, nonce: str) -> PspResult | None:
        """What the PSP did for the nonce, or None when it has no operation under it.

        None is "not (yet) done", not "failed": a request that is still on its way may yet
        do the work, so the safe next step is the same call with the same nonce.
        """
        ...

    def settlement_file(self, day: date) -> str:
        """The day's settlement file (CSV text): every operation the PSP settled that UTC day."""
        ...


@runtime_checkable
class AwaitedPsp(Protocol):
    """The calls a request makes at once, awaited: an API process need not hold a thread
    while the PSP works. The same contract as `Psp`'s methods of the same names."""

    async def charge_async(self, nonce: str, amount: int, currency: str,
                           source: Source) -> PspResult: ...

    async def payout_async(self, nonce: str, amount: int, currency: str,
                           destination: Destination) -> PspResult: ...

    async def status_async(self, nonce: str) -> PspResult | None: ...
