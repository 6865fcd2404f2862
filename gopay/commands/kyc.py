"""Know your customer: identity documents sent by a customer, decided by staff; limits follow."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from uuid import UUID

from gopay.aggregates.errors import ValidationFailed
from gopay.aggregates.user import User
from gopay.aggregates.wallet import Wallet
from gopay.commands.bus import Command, Context, in_batch
from gopay.group_commit import UnitOfWork

ADULT_AGE = 18


@dataclass(frozen=True, kw_only=True)
class SubmitKyc(Command[User]):
    user_id: UUID
    document_type: str
    document_number: str = field(repr=False)
    date_of_birth: date = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class DecideKyc(Command[User]):
    """Staff approve or reject; the wallet's tier (and so its limits) follows at once."""

    staff_id: UUID
    user_id: UUID
    decision: str
    reason: str = ""


@in_batch(SubmitKyc)
def submit_kyc(command: SubmitKyc, unit: UnitOfWork, context: Context) -> User:
    today, born = context.today(), command.date_of_birth
    if not date(1900, 1, 1) <= born <= today:
        raise ValidationFailed("date_of_birth is not a real date of birth")
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    if age < ADULT_AGE:
        raise ValidationFailed("GoPay accounts are for adults (18 or older)")
    user = unit.get(command.user_id, User)
    user.submit_kyc(command.document_type, command.document_number.strip().upper(),
                    born.isoformat())
    return user


@in_batch(DecideKyc)
def decide_kyc(command: DecideKyc, unit: UnitOfWork, context: Context) -> User:
    user = unit.get(command.user_id, User)
    user.decide_kyc(command.decision, by=command.staff_id, reason=command.reason)
    if user.wallet_id is not None:
        wallet = unit.find(user.wallet_id, Wallet)
        if wallet is not None:
            wallet.change_tier("verified" if user.kyc_status == "verified" else "unverified",
                               by=command.staff_id)
    return user
