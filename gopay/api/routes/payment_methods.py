"""Payment methods a customer saves for top-ups and payouts: cards, bank accounts, wallets, crypto."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from gopay.aggregates.payment_method import PaymentMethod, PaymentMethodExists
from gopay.api.deps import Customer, IdCursor, IdempotencyKey, SystemDep, id_cursor
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
from gopay.payment_methods import (
    add_payment_method,
    get_payment_method,
    list_payment_methods,
    remove_payment_method,
)

router = APIRouter(prefix="/v1/payment-methods", tags=["payment methods"])


def payment_method_public(method: PaymentMethod) -> PaymentMethodPublic:
    """The method as its owner may see it: masked details only."""
    common = {"id": method.id, "created_at": method.created_on}
    details = method.details
    if method.method_type == "card":
        return CardMethodPublic(**common, card=CardPublic(**details))
    if method.method_type == "bank_account":
        return BankAccountMethodPublic(**common, bank_account=BankAccountPublic(
            **details, holder_name=method.holder_name))
    if method.method_type == "digital_wallet":
        return DigitalWalletMethodPublic(**common, digital_wallet=DigitalWalletPublic(**details))
    return CryptoMethodPublic(**common, crypto=CryptoPublic(**details))


@router.post("", status_code=201, response_model=PaymentMethodPublic)
def add(body: PaymentMethodCreate, caller: Customer, system: SystemDep,
        idempotency_key: IdempotencyKey = None) -> PaymentMethodPublic:
    """Save a payment method; the answer shows it masked. The same card twice is a 409
    `payment_method_exists` naming the saved one in `payment_method_id`."""
    instrument = body.instrument(today=datetime.now(UTC).date())
    try:
        outcome = add_payment_method(system.app, caller.user_id, instrument, idempotency_key)
    except PaymentMethodExists as exists:
        raise Problem(409, str(exists), exists.code,
                      payment_method_id=str(exists.existing_id)) from None
    return payment_method_public(outcome.value)


@router.get("", response_model=PaymentMethodPage)
def list_all(caller: Customer, system: SystemDep,
             limit: Annotated[int, Query(ge=1, le=200)] = 50,
             cursor: IdCursor = None
             ) -> PaymentMethodPage:
    """Your saved payment methods, newest first."""
    after = id_cursor(cursor)
    methods, next_id = list_payment_methods(system.app, caller.user_id, limit=limit,
                                            after=UUID(after) if after else None)
    return PaymentMethodPage(data=[payment_method_public(m) for m in methods],
                next_cursor=str(next_id) if next_id else None)


@router.get("/{method_id}", response_model=PaymentMethodPublic)
def get(method_id: str, caller: Customer, system: SystemDep) -> PaymentMethodPublic:
    """One of your payment methods; anyone else's does not exist."""
    return payment_method_public(
        get_payment_method(system.app, caller.user_id, _method_id(method_id)))


@router.delete("/{method_id}", response_model=PaymentMethodDeleted)
def delete(method_id: str, caller: Customer, system: SystemDep) -> PaymentMethodDeleted:
    """Remove one of your payment methods; its number is forgotten at once."""
    outcome = remove_payment_method(system.app, caller.user_id, _method_id(method_id))
    return PaymentMethodDeleted(id=outcome.value.id)


def _method_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise Problem(404, "payment method not found") from None
