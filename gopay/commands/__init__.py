"""Every way to change GoPay: one module per flow, each a frozen command and its handler.

Importing this package registers every handler with the bus (`gopay.commands.bus`).
"""

from gopay.commands import (
    adjustment,
    adjustment_proposals,
    devices,
    kyc,
    payment_methods,
    payouts,
    profile,
    psp_outcomes,
    reconciliation,
    recovery,
    registration,
    sign_in,
    staff,
    topups,
    transfer,
    two_factor,
)
from gopay.commands.bus import Command, Commands, Context, Outcome

__all__ = ["Command", "Commands", "Context", "Outcome", "adjustment", "devices", "kyc",
           "payment_methods", "payouts", "profile", "psp_outcomes", "recovery", "registration",
           "sign_in", "staff", "topups", "transfer", "two_factor"]
__all__ += ["adjustment_proposals", "reconciliation"]
