"""Payment methods a customer saves for top-ups and payouts: cards, bank accounts, wallets, crypto."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from gopay.api.deps import Customer, IdCursor, IdempotencyKey, SystemDep, id_cursor
from gopay.api.pagination import page_of
from gopay.api.payment_method_schemas import (
    BankAccountMethodPublic,
    BankAccountPublic,
    CardMethodPublic,
    CardPublic,
    CryptoMethodPublic,
    CryptoPublic,
    DigitalWalletMethodPublic,
    DigitalWalletPublic,
    PaymentMethodCreate,
    PaymentMethodDeleted,
    PaymentMethodPage,
    PaymentMethodPublic,
)
from gopay.api.problems import Problem
from gopay.commands.payment_methods import AddPaymentMethod, RemovePaymentMethod
from gopay.system import System

router = APIRouter(prefix="/v1/payment-methods", tags=["payment methods"])


def payment_method_public(row: dict[str, Any]) -> PaymentMethodPublic:
    """The method as its owner may see it: masked details only."""
    common = {"id": row["id"], "created_at": row["created_at"]}
    details = row["details"]
    if row["type"] == "card":
        return CardMethodPublic(**common, card=CardPublic(**details))
    if row["type"] == "bank_account":
        return BankAccountMethodPublic(**common, bank_account=BankAccountPublic(
            **details, holder_name=row["holder_name"]))
    if row["type"] == "digital_wallet":
        return DigitalWalletMethodPublic(**common, digital_wallet=DigitalWalletPublic(**details))
    return CryptoMethodPublic(**common, crypto=CryptoPublic(**details))


def shown_method(system: System, owner_id: UUID, method_id: UUID,
                 position: int | None = None) -> PaymentMethodPublic:
    """The owner's method as the read side shows it (once it has reached `position`)."""
    system.show(position if position is not None else system.head())
    row = system.read_side.payment_methods.method(owner_id, method_id)
    if row is None:
        raise Problem(404, "payment method not found")
    return payment_method_public(row)


@router.post("", status_code=201, response_model=PaymentMethodPublic)
def add(body: PaymentMethodCreate, caller: Customer, system: SystemDep,
        idempotency_key: IdempotencyKey = None) -> PaymentMethodPublic:
    """Save a payment method; the answer shows it masked. The same card twice is a 409
    `payment_method_exists` naming the saved one in `payment_method_id`."""
    outcome = system.commands.run(AddPaymentMethod(
        owner_id=caller.user_id, instrument=body.instrument(today=system.commands.context.today()),
        idempotency_key=idempotency_key))
    return shown_method(system, caller.user_id, outcome.value.id, outcome.position)


@router.get("", response_model=PaymentMethodPage)
def list_all(caller: Customer, system: SystemDep,
             limit: Annotated[int, Query(ge=1, le=200)] = 50,
             cursor: IdCursor = None) -> PaymentMethodPage:
    """Your saved payment methods, newest first."""
    system.catch_up_reads()
    after = id_cursor(cursor)
    rows = system.read_side.payment_methods.methods(caller.user_id, limit=limit + 1,
                                                    after=UUID(after) if after else None)
    return page_of(PaymentMethodPage, rows, limit, payment_method_public, lambda row: row["id"])


@router.get("/{method_id}", response_model=PaymentMethodPublic)
def get(method_id: str, caller: Customer, system: SystemDep) -> PaymentMethodPublic:
    """One of your payment methods; anyone else's does not exist."""
    return shown_method(system, caller.user_id, _method_id(method_id))


@router.delete("/{method_id}", response_model=PaymentMethodDeleted)
def delete(method_id: str, caller: Customer, system: SystemDep) -> PaymentMethodDeleted:
    """Remove one of your payment methods; its number is forgotten at once."""
    outcome = system.commands.run(RemovePaymentMethod(owner_id=caller.user_id,
                                                      method_id=_method_id(method_id)))
    return PaymentMethodDeleted(id=outcome.value.id)


def _method_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise Problem(404, "payment method not found") from None
