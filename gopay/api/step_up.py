"""Step-up: a fresh second factor before a large payment, unless the request is a retry."""

from __future__ import annotations

from gopay.aggregates.payment_order import PaymentOrder, order_id_for
from gopay.commands.two_factor import ConfirmSecondFactor
from gopay.security.tokens import AccessClaims
from gopay.system import System


def confirm_step_up(system: System, caller: AccessClaims, amount: int, operation: str,
                    idempotency_key: str | None, otp: str | None) -> None:
    """From the step-up amount up, a user with 2FA on sends a fresh code in `GoPay-OTP`; a
    retry with the same Idempotency-Key does not need another one (its code was spent)."""
    if amount < system.settings.step_up_amount:
        return
    if idempotency_key and system.app.find(
            order_id_for(caller.user_id, operation, idempotency_key), PaymentOrder):
        return
    system.commands.run(ConfirmSecondFactor(user_id=caller.user_id, code=otp))
