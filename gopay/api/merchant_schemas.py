"""Request and response bodies of the merchant integration: QR codes and payments, refunds,
API keys, webhook endpoints and deliveries, fee quotes."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from gopay.aggregates.fees import FeePayer
from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.webhook_endpoint import EVENT_TYPES
from gopay.api.schemas import Amount, Name, UtcDatetime
from gopay.security.qr_codes import MAX_LENGTH

Reference = Annotated[str, StringConstraints(strip_whitespace=True, max_length=140),
                      Field(description="Your own reference (an order number): shown to the payer, "
                                        "in both histories and in the webhook")]

# QR codes and their payments


class QrCodeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Amount | None = Field(default=None,
                                  description="Leave out for an open amount: the payer enters it")
    reference: Reference = ""
    expires_in: Annotated[StrictInt, Field(ge=1, le=366 * 86_400)] | None = Field(
        default=None, description="Seconds until it expires (default: 900 for a fixed amount; "
                                  "an open-amount code without it never expires)")


class QrCodePublic(BaseModel):
    id: UUID
    qr_payload: str = Field(description="The signed text to show as a QR code")
    amount: int | None
    currency: str
    reference: str
    expires_at: UtcDatetime | None
    merchant_wallet_id: UUID
    status: Literal["open", "paid", "expired"]
    payment_id: UUID | None = None
    created_at: UtcDatetime


class QrPaymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    qr_payload: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                 max_length=MAX_LENGTH)]
    amount: Amount | None = Field(default=None, description="Only for an open-amount QR code")


class QrPaymentPublic(BaseModel):
    id: UUID
    status: str
    amount: int
    currency: str
    merchant_wallet_id: UUID
    payer_wallet_id: UUID
    reference: str
    fee: int = Field(description="What GoPay's fee schedule charged the payer for it")
    created_at: UtcDatetime


class MerchantPaymentPublic(BaseModel):
    """A payment the merchant received, with what has been refunded of it."""

    id: UUID
    type: Literal["qr_payment"] = "qr_payment"
    status: Literal["succeeded", "partially_refunded", "refunded"]
    amount: int
    currency: str
    fee: int = Field(description="The merchant's fee on it (taken from what it received)")
    net: int
    refunded: int
    disputed: int = Field(0, description="What the payer's open (or won) disputes claim of it")
    refundable: int
    reference: str
    payer_wallet_id: str
    created_at: UtcDatetime


class RefundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Amount | None = Field(default=None, description="Leave out to refund all that is left")


class RefundPublic(BaseModel):
    id: UUID
    payment_id: UUID
    status: str
    amount: int
    currency: str
    payer_wallet_id: UUID
    created_at: UtcDatetime


# API keys


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name


class ApiKeyPublic(BaseModel):
    id: UUID
    name: str
    prefix: str
    last4: str
    created_at: UtcDatetime
    revoked_at: UtcDatetime | None = None


class ApiKeyIssued(ApiKeyPublic):
    secret: str | None = Field(description="Shown once, here: keep it. A repeat of the request "
                                           "with its Idempotency-Key cannot show it again (null)")


# Webhooks

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]  # the tuple's members, as a Literal


class WebhookEndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2048)]
    events: Annotated[list[EventType], Field(min_length=1, max_length=len(EVENT_TYPES))]


class WebhookEndpointPublic(BaseModel):
    id: UUID
    url: str
    events: list[str]
    created_at: UtcDatetime


class WebhookEndpointCreated(WebhookEndpointPublic):
    secret: str = Field(description="Verifies GoPay-Signature on every delivery")


class WebhookAttemptPublic(BaseModel):
    number: int
    attempted_at: UtcDatetime
    status_code: int | None
    error: str | None
    duration_ms: int


class WebhookDeliveryPublic(BaseModel):
    id: UUID
    endpoint_id: UUID
    event_id: str
    event_type: str
    status: Literal["pending", "succeeded", "failed", "cancelled"]
    attempts: list[WebhookAttemptPublic]
    next_attempt_at: UtcDatetime | None
    created_at: UtcDatetime
    payload: dict[str, Any]


# Fees


class FeeQuote(BaseModel):
    type: TransactionType
    amount: int
    currency: str
    fee: int
    paid_by: FeePayer | None = Field(description="None when there is no fee")
    payer_pays: int = Field(description="What leaves the payer's wallet, fee included")
    payee_receives: int = Field(description="What reaches the payee, after any fee it pays")


class Removed(BaseModel):
    id: UUID
    removed: Literal[True] = True

