"""Every way to change GoPay: one module per flow, each a frozen command and its handler.

Importing this package registers every handler with the bus (`gopay.commands.bus`).
"""

from gopay.commands import (
    adjustment,
    adjustment_proposals,
    api_keys,
    bill_payments,
    biller_settlements,
    billers,
    cash_ins,
    cash_outs,
    devices,
    disputes,
    fraud_reviews,
    kyc,
    merchant_payouts,
    mobile_operators,
    notification_preferences,
    payment_methods,
    payment_requests,
    payouts,
    profile,
    psp_outcomes,
    qr_payments,
    recharges,
    reconciliation,
    recovery,
    refunds,
    registration,
    sign_in,
    staff,
    support_tickets,
    topups,
    transfer,
    two_factor,
    webhook_endpoints,
)
from gopay.commands.bus import Command, Commands, Context, Outcome

__all__ = ["Command", "Commands", "Context", "Outcome", "adjustment", "adjustment_proposals",
           "api_keys", "bill_payments", "biller_settlements", "billers", "cash_ins", "cash_outs",
           "devices", "disputes", "fraud_reviews", "kyc", "merchant_payouts", "mobile_operators",
           "notification_preferences", "payment_methods", "payment_requests", "payouts",
           "profile", "psp_outcomes", "qr_payments", "recharges", "reconciliation", "recovery",
           "refunds", "registration", "sign_in", "staff", "support_tickets", "topups",
           "transfer", "two_factor", "webhook_endpoints"]
