"""The operator port: how GoPay buys airtime for a phone number from a mobile operator.

Operators are reached through one gateway (an airtime aggregator, or the bundled simulator
inside `gopay psp-sim`). Like the PSP, it keys each recharge by GoPay's nonce, so the answers
come in the PSP port's terms: a `PspResult` of kind `recharge`, `PspNoAnswer` when the outcome
is unknown (ask `status(nonce)` later, or repeat with the same nonce), `PspRefused` when the
gateway did nothing. The same process retries both kinds of call (`gopay.processes.psp`).
"""

from __future__ import annotations

from typing import Protocol

from gopay.psp.port import PspResult


class Operators(Protocol):
    """The mobile operators' gateway, as the recharge flow uses it."""

    def recharge(self, nonce: str, phone_number: str, operator: str, amount: int,
                 currency: str) -> PspResult:
        """Top up `phone_number` (E.164) on `operator`'s network with `amount` of airtime.

        A number the operator does not serve is a `failed` result, not an error.
        """
        ...

    def status(self, nonce: str) -> PspResult | None:
        """What the gateway did for the nonce, or None when it has no recharge under it
        (not yet done, which is not the same as failed)."""
        ...
