"""Request and response bodies, named for their role (`TransferCreate`, `TransferPublic`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar
from uuid import UUID

import pycountry
from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
)

from gopay.aggregates.ledger import TransactionType
from gopay.aggregates.money import CURRENCIES, MAX_AMOUNT
from gopay.security.passwords import MIN_LENGTH


def _known_currency(code: str) -> str:
    if code not in CURRENCIES:
        raise ValueError(f"unsupported currency {code!r}")
    return code


def _known_country(code: str) -> str:
    if pycountry.countries.get(alpha_2=code) is None:
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return code


Amount = Annotated[StrictInt, Field(gt=0, le=MAX_AMOUNT, description="Minor units, e.g. 1050 = 10.50")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), AfterValidator(_known_currency),
                     Field(json_schema_extra={"enum": sorted(CURRENCIES)},
                           description="ISO 4217 code of a currency GoPay holds")]
Phone = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$"), AfterValidator(_known_country),
                    Field(json_schema_extra={"enum": sorted(c.alpha_2 for c in pycountry.countries)},
                          description="ISO 3166-1 alpha-2 country code")]
# PostgreSQL's text holds no NUL character: one in an event would stop the read side for good.
NO_NUL = r"^[^\x00]*$"
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500, pattern=NO_NUL)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200,
                                        pattern=NO_NUL)]
Password = Annotated[str, StringConstraints(min_length=MIN_LENGTH, max_length=256)]

# Every timestamp leaves GoPay as RFC 3339 UTC, whichever store it was read from.
UtcDatetime = Annotated[datetime, AfterValidator(lambda moment: moment.astimezone(UTC))]


def _text_matching(pattern: str, meaning: str) -> Callable[[Any], Any]:
    """Refuse what pydantic would also take (unix seconds, naive times) but the schema's format does not."""
    def check(value: Any) -> Any:
        if not (isinstance(value, str) and re.fullmatch(pattern, value)):
            raise ValueError(f"must be {meaning}")
        return value
    return check


# Timestamps coming in: RFC 3339 with an offset, as `format: date-time` says.
Rfc3339Datetime = Annotated[datetime, BeforeValidator(_text_matching(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})",
    "an RFC 3339 date-time with an offset"))]
IsoDate = Annotated[date, BeforeValidator(_text_matching(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", "a YYYY-MM-DD date"))]

# EmailStr's email-validator refuses the special-use domains of RFC 6761 (.test, .local, ...),
# which `format: email` alone allows: the schema says so too.
Email = Annotated[EmailStr, Field(json_schema_extra={"not": {"pattern": "[@.](" + "|".join(
    "".join(f"[{c.upper()}{c}]" if c.isalpha() else re.escape(c) for c in name)
    for name in SPECIAL_USE_DOMAIN_NAMES) + r")\.?$"}})]

T = TypeVar("T")


class Problem(BaseModel):
    """RFC 9457 problem details; `code` is the stable machine word."""

    type: str
    title: str
    status: int
    detail: str
    code: str


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None


# People and sessions


class UserCreate(BaseModel):
    # A company needs a business name and a category (the route refuses it without them, 422);
    # said in the schema too, so that a request the schema calls valid is one GoPay accepts.
    model_config = ConfigDict(json_schema_extra={
        "if": {"properties": {"kind": {"const": "company"}}},
        "then": {"required": ["business_name", "category"],
                 "properties": {"business_name": {"type": "string"}, "category": {"type": "string"}}},
    })

    email: Email
    password: Password
    full_name: Name
    phone: Phone
    country: Country
    kind: Literal["person", "company", "agent"]
    currency: Currency = "USD"
    business_name: Name | None = None
    category: Literal["merchant", "biller"] | None = None


class UserPublic(BaseModel):
    id: UUID
    email: str
    kind: str
    role: str | None = None
    kyc_status: str
    wallet_id: UUID | None
    full_name: str
    phone: str | None = None
    country: str | None = None
    business_name: str | None = None
    category: str | None = None
    frozen: bool = False
    login_notifications: bool = True
    two_factor_enabled: bool = False
    created_at: UtcDatetime
    # Only what the user changed: every type and channel not listed is on.
    notification_preferences: dict[str, dict[str, bool]] = {}


NotificationType = Literal[
    "transfer.received", "topup.succeeded", "topup.failed", "payout.paid", "payout.failed",
    "payment_request.received", "login.new_device", "kyc.decided", "review.decided",
    "security.password_changed", "security.two_factor_changed", "support.reply"]


class NotificationChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: StrictBool | None = None
    in_app: StrictBool | None = None


class ProfileUpdate(BaseModel):
    """The fields a user may change about themselves; any other field is refused (422)."""

    model_config = ConfigDict(extra="forbid")

    full_name: Name | None = None
    phone: Phone | None = None
    login_notifications: StrictBool | None = None
    # {TYPE: {email: bool, in_app: bool}}; security notices cannot be turned off (422).
    notification_preferences: dict[NotificationType, NotificationChoice] | None = None


class LoginRequest(BaseModel):
    email: Annotated[str, StringConstraints(max_length=320)]
    password: Annotated[str, StringConstraints(max_length=256)]
    otp: Annotated[str, StringConstraints(max_length=16)] | None = None
    device_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None


class RecoveryRequest(BaseModel):
    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=320)]


class RecoveryConfirm(BaseModel):
    token: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    new_password: Password


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    detail: str


class RefreshRequest(BaseModel):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=512)]


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - OAuth's token type, not a secret
    expires_in: int


OtpCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=6, max_length=16),
                   Field(description="A 6-digit code from the authenticator app, or a recovery code")]


class OtpConfirm(BaseModel):
    otp: OtpCode


class TotpSetupPublic(BaseModel):
    secret: str
    otpauth_uri: str


class RecoveryCodesPublic(BaseModel):
    """Shown once: each code signs in once in place of the authenticator app."""

    enabled: bool = True
    recovery_codes: list[str]


DeviceId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class DevicePublic(BaseModel):
    id: str
    enrolled_at: UtcDatetime
    last_login_at: UtcDatetime
    locked: bool
    wipe: bool


class DeviceLock(BaseModel):
    wipe: StrictBool = False


class DeviceReenroll(BaseModel):
    password: Annotated[str, StringConstraints(max_length=256)]
    otp: OtpCode | None = None


class DeviceStatusPublic(BaseModel):
    locked: bool
    wipe: bool


class KycSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document_type: Literal["passport", "national_id", "driving_licence"]
    document_number: Annotated[str, StringConstraints(strip_whitespace=True,
                                                      pattern=r"^[A-Za-z0-9][A-Za-z0-9 -]{2,28}[A-Za-z0-9]$")]
    date_of_birth: IsoDate


class KycDecision(BaseModel):
    decision: Literal["approve", "reject"]
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""


class RoleChange(BaseModel):
    role: Literal["admin", "sub_admin", "auditor", "finance", "support"]


class SecurityEventPublic(BaseModel):
    type: str
    version: int
    at: UtcDatetime
    data: dict[str, Any]


class CompanyPublic(BaseModel):
    id: UUID
    business_name: str | None
    category: str | None
    wallet_id: UUID | None


# Wallet


class WalletPublic(BaseModel):
    id: UUID
    currency: str
    balance: int
    available: int
    held: int
    frozen: bool


class TransactionPublic(BaseModel):
    id: UUID
    type: TransactionType
    direction: Literal["credit", "debit"]
    amount: int
    currency: str
    status: str
    counterparty: str
    reference: str
    created_at: UtcDatetime
    balance_after: int


# Moving money


class TransferCreate(BaseModel):
    recipient: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)]
    amount: Amount
    currency: Currency
    note: Text = ""


class TransferPublic(BaseModel):
    id: UUID
    status: str
    amount: int
    currency: str
    sender_wallet_id: UUID
    recipient_wallet_id: UUID
    note: str
    created_at: UtcDatetime


class ExternalPaymentCreate(BaseModel):
    """A top-up from, or a payout to, one of the caller's saved payment methods."""

    amount: Amount
    currency: Currency
    payment_method_id: UUID


class ExternalPaymentPublic(BaseModel):
    """A top-up or payout: `pending` until the PSP has settled it."""

    id: UUID
    type: Literal["topup", "payout"]
    status: Literal["pending", "succeeded", "failed"]
    amount: int
    currency: str
    wallet_id: UUID
    psp_reference: str | None
    failure_reason: str | None
    created_at: UtcDatetime


# Staff


class DeadLetterPublic(BaseModel):
    """Work with the PSP that was given up on after its last retry, until staff try it again."""

    id: UUID
    operation: str
    order_id: UUID | None
    attempts: int
    last_error: str
    created_at: UtcDatetime


class AdjustmentCreate(BaseModel):
    wallet_id: UUID
    direction: Literal["credit", "debit"]
    amount: Amount
    currency: Currency
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class AdjustmentPublic(BaseModel):
    id: UUID
    type: Literal["adjustment"] = "adjustment"
    status: str
    wallet_id: UUID
    direction: Literal["credit", "debit"]
    amount: int
    currency: str
    reason: str
    created_by: UUID
    created_at: UtcDatetime


class StaffAccountPublic(UserPublic):
    """A customer account as staff see it: with the wallet's state."""

    wallet: WalletPublic | None = None


