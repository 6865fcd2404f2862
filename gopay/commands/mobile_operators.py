"""Mobile operators: staff add the networks customers can buy airtime from, each with a payable account."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from uuid import UUID, uuid4

import pycountry

from gopay.aggregates.errors import ValidationFailed
from gopay.aggregates.mobile_operator import MobileOperator
from gopay.aggregates.money import Money
from gopay.aggregates.wallet import Wallet
from gopay.commands.bus import Command, Context, in_batch
from gopay.commands.idempotency import repeat_of
from gopay.group_commit import UnitOfWork


@dataclass(frozen=True, kw_only=True)
class AddOperator(Command[MobileOperator]):
    """Add a mobile operator of `country` (ISO 3166-1 alpha-2), paid in `currency`."""

    staff_id: UUID
    name: str
    country: str
    currency: str = "USD"
    idempotency_key: str | None = None
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValidationFailed("an operator needs a name")
        if pycountry.countries.get(alpha_2=self.country) is None:
            raise ValidationFailed("country is an ISO 3166-1 alpha-2 code")
        Money(0, self.currency)  # a currency GoPay holds

    @cached_property
    def operator_id(self) -> UUID:
        """Derived from the key, so a retry finds the same operator; new for a command without one."""
        key = self.idempotency_key
        return MobileOperator.id_for(self.staff_id, key) if key else uuid4()


@in_batch(AddOperator)
def add_operator(command: AddOperator, unit: UnitOfWork, context: Context) -> MobileOperator:
    operator_id = command.operator_id
    existing = repeat_of(unit, operator_id, MobileOperator, command.idempotency_key,
                         lambda operator: operator.request_fingerprint == command.fingerprint)
    if existing is not None:
        return existing
    payable = Wallet(owner_id=operator_id, currency=command.currency)
    operator = MobileOperator(id=operator_id, name=command.name.strip(), country=command.country,
                              currency=command.currency, wallet_id=payable.id,
                              created_by=command.staff_id, request_fingerprint=command.fingerprint)
    unit.add(payable, operator)
    return operator
